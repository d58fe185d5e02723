"""Peak memory of a block of code: CUDA max-allocated on a GPU, resident set size on the CPU."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _peak_rss_bytes() -> int:
    """The process's peak RSS since the last `_reset_peak_rss` (VmHWM; 0 where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_LIBC: list = []


def release_free_memory() -> None:
    """Hand memory that Python and the C allocator hold but no longer use back to the system, so
    that RSS growth counts what a block allocates, not what earlier work left cached: without
    this, a run after another reuses the freed heap and appears to need almost nothing."""
    gc.collect()
    try:
        if not _LIBC:  # find_library runs ldconfig: once
            _LIBC.append(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"))
        _LIBC[0].malloc_trim(0)  # glibc; absent elsewhere (musl, macOS)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """`with PeakMemory(device) as peak: ...; peak.mb` — the memory the block needed, in MiB.

    On the CPU: the peak resident set size during the block minus the RSS at its start. Free heap
    memory is first handed back (`release_free_memory`) and the kernel's peak-RSS mark (VmHWM)
    reset, so the figure is the block's own even after earlier runs in the same process; where
    VmHWM cannot be reset, a thread samples RSS every few milliseconds. (The ~800 MiB that
    torch's libraries occupy are in the baseline: they would drown any difference between
    methods.) On CUDA: the peak of allocated tensor memory during the block.
    """

    def __init__(self, device: torch.device | str = "cpu", interval_s: float = 0.005) -> None:
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.baseline_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kernel_peak = False

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            release_free_memory()
            self._kernel_peak = _reset_peak_rss()
            self.baseline_bytes = self.peak_bytes = current_rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())
            if self._kernel_peak:
                self.peak_bytes = max(self.peak_bytes, _peak_rss_bytes())

    @property
    def mb(self) -> float:
        return max(0, self.peak_bytes - self.baseline_bytes) / 2**20
