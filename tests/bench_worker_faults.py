"""Faults injected into bench worker processes (importable by a spawned worker: its initializer)."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path


def kill_inside(marker_dir: str, method: str, times: int) -> None:
    """Make `method` kill its own worker process (SIGKILL, as the OOM killer would) mid-cell, the
    first `times` times it runs across all workers; each kill leaves one file in `marker_dir`."""
    from prunelora.methods import base

    entry = base._METHODS[method]

    def run(model, splits, config, ctx):
        markers = Path(marker_dir)
        if len(list(markers.iterdir())) < times:
            (markers / f"killed-{os.getpid()}").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return entry.run(model, splits, config, ctx)

    base._METHODS[method] = dataclasses.replace(entry, run=run)
