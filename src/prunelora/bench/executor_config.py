"""Where a benchmark's cells run: the `executor:` section of a bench config and its CLI flags.

    executor:
      kind: local          # local (processes on this machine) or ray (a Ray cluster)
      workers: 2           # local: cells at once, each in its own process (1: in this process)
      threads: null        # torch threads per cell (default: cores // workers, or cpus_per_task)
      cpus_per_task: 1     # ray: CPUs each cell asks for
      gpus_per_task: 0     # ray: GPUs each cell asks for (1: every cell on its own GPU)
      address: null        # ray: the cluster's head (host:port, ray://host:port or auto); null starts a local one

Plain data, no torch: the config module validates it before anything is loaded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace

from prunelora.errors import InvalidInputError, shown

KINDS = ("local", "ray")
_ADDRESS = re.compile(r"(ray://)?[A-Za-z0-9._\-\[\]:]+:\d{1,5}")


def available_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ExecutorSettings:
    """How the cells of a bench run. See the module docstring for each field."""

    kind: str = "local"
    workers: int = 1
    threads: int | None = None
    cpus_per_task: int = 1
    gpus_per_task: float = 0
    address: str | None = None

    @classmethod
    def from_dict(cls, data: dict | None, source: str = "config") -> ExecutorSettings:
        """Read and check an `executor:` mapping.

        Args:
            data: the mapping (None or empty: one local worker, as without the section).
            source: what to name in error messages (the config file).

        Returns:
            The checked settings.

        Raises:
            InvalidInputError: an unknown key or a bad value, in one line.
        """
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInputError(f"{source}: executor must be a mapping (kind, workers, threads, "
                                    f"cpus_per_task, gpus_per_task, address), not {shown(data)}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known), key=str)
        if unknown:
            raise InvalidInputError(f"{source}: unknown key {shown(unknown[0])} in executor; accepted: {', '.join(known)}")
        settings = cls(**data)
        settings.check(source)
        return settings

    def check(self, source: str = "config") -> None:
        """Raise InvalidInputError (one line naming `source`, the field and the bad value) unless valid."""
        if self.kind not in KINDS:
            raise InvalidInputError(f"{source}: executor kind {shown(self.kind)} is unknown; accepted: {', '.join(KINDS)}")
        for name in ("workers", "cpus_per_task"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{source}: {_flag(name, source)} {shown(value)} must be a positive integer")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise InvalidInputError(f"{source}: {_flag('threads', source)} {shown(self.threads)} must be a positive "
                                    "integer or null (cores // workers)")
        gpus = self.gpus_per_task
        if isinstance(gpus, bool) or not isinstance(gpus, int | float) or not gpus >= 0:  # (NaN too)
            raise InvalidInputError(f"{source}: executor gpus_per_task {shown(gpus)} must be a number >= 0 "
                                    "(e.g. 1: each cell on its own GPU)")
        if self.address is not None:
            if self.kind != "ray":
                raise InvalidInputError(f"{source}: {_flag('address', source)} {shown(self.address)} is for the ray "
                                        "executor (--executor ray); the local executor runs on this machine")
            if not isinstance(self.address, str) or not (self.address == "auto" or _ADDRESS.fullmatch(self.address)):
                raise InvalidInputError(f"{source}: {_flag('address', source)} {shown(self.address)} is not a Ray "
                                        "address; accepted: HOST:PORT or ray://HOST:PORT of a running cluster's "
                                        "head, or auto")
        if self.kind == "ray" and self.workers != 1:
            raise InvalidInputError(f"{source}: {_flag('workers', source)} {self.workers} is for the local "
                                    "executor; on ray the cluster's free CPUs and GPUs decide how many cells "
                                    "run at once (set cpus_per_task / gpus_per_task)")

    def with_overrides(self, workers: int | None = None, kind: str | None = None,
                       address: str | None = None, source: str = "command line") -> ExecutorSettings:
        """These settings with what the command line gave (None: keep the config's).

        Args:
            workers: `--workers`.
            kind: `--executor`.
            address: `--address`.
            source: what to name in error messages.

        Returns:
            The checked settings.

        Raises:
            InvalidInputError: a bad value or a flag that does not fit the executor, in one line.
        """
        changes: dict = {}
        if kind is not None:
            changes["kind"] = kind
            if kind == "local":
                changes["address"] = None
            else:
                changes["workers"] = 1  # a config's local worker count does not apply on ray
        if workers is not None:
            changes["workers"] = workers
        if address is not None:
            changes["address"] = address
        settings = replace(self, **changes)
        settings.check(source)
        return settings

    def cell_threads(self) -> int | None:
        """Torch threads per cell: `threads`, else what leaves workers x threads <= cores
        (ray: the CPUs a task asks for). None: one local worker, leave torch's default alone."""
        if self.threads is not None:
            return self.threads
        if self.kind == "ray":
            return self.cpus_per_task
        if self.workers == 1:
            return None
        return max(1, available_cores() // self.workers)

    def describe(self) -> str:
        """One line for logs and the report, e.g. "local, 2 workers x 1 thread"."""
        threads = self.cell_threads()
        per = "torch's default threads" if threads is None else f"{threads} thread{'s' * (threads != 1)} per cell"
        if self.kind == "ray":
            where = self.address or "a local Ray instance"
            asks = f"{self.cpus_per_task} CPU" + (f", {self.gpus_per_task:g} GPU" if self.gpus_per_task else "")
            return f"ray on {where}, each cell asks {asks}; {per}"
        return f"local, {self.workers} worker{'s' * (self.workers != 1)}; {per}"


def _flag(name: str, source: str) -> str:
    """A field as the user wrote it: the flag on the command line, `executor.NAME` in a file."""
    return f"--{name}" if source == "command line" and name in ("workers", "address") else f"executor.{name}"
