"""The grid's progress line: cells done / total, the cells running, an estimate of the time left.

Printed before each cell starts, by the sequential runner and by the parallel scheduler alike. The
estimate is per kind of cell: a retrain (a whole training run) takes several times as long as a
method cell, so each kind's remaining cells are counted at that kind's mean duration so far (at
the mean of every finished cell while none of the kind has finished), spread over the slots.
"""

from __future__ import annotations

from collections import Counter


def cell_kind(method_key: str) -> str:
    """`retrain` for the references, `method` for every other cell."""
    return "retrain" if method_key == "retrain" else "method"


def progress_line(done: int, total: int, running: list[str], left: dict[str, int],
                  durations: dict[str, list[float]], slots: int = 1) -> str:
    """One line for the grid.

    Args:
        done: cells finished (now or earlier).
        total: cells in the grid.
        running: labels of the cells running now.
        left: cells not finished yet (the running ones included), per kind (`cell_kind`).
        durations: seconds of each cell finished in this run, per kind.
        slots: cells run at once.

    Returns:
        E.g. `[cells 3/20] running: class3 finetune seed 0; about 12 min left`.
    """
    shown = ", ".join(running[:3]) + (f" and {len(running) - 3} more" if len(running) > 3 else "")
    every = [s for values in durations.values() for s in values]
    remaining = sum(left.values())
    if every:
        mean = {kind: sum(values) / len(values) for kind, values in durations.items() if values}
        work = sum(count * mean.get(kind, sum(every) / len(every)) for kind, count in left.items())
        estimate = f"about {_duration(work / max(1, min(slots, remaining)))} left"
    else:
        estimate = "estimating the time left after the first cell"
    return f"[cells {done}/{total}] running: {shown or 'none'}; {estimate}"


class GridProgress:
    """The sequential runner's progress: it is told of each cell as it is reused, starts and ends,
    and gives the line to print when one starts (see `progress_line`).

    Args:
        total: cells in the grid, per kind (`cell_kind`).
    """

    def __init__(self, total: dict[str, int]) -> None:
        self.left = Counter(total)
        self.total = sum(total.values())
        self.durations: dict[str, list[float]] = {}

    def reused(self, kind: str) -> None:
        """A cell finished in an earlier run."""
        self.left[kind] -= 1

    def starting(self, label: str) -> str:
        """The line to print as the cell `label` starts."""
        return progress_line(self.total - sum(self.left.values()), self.total, [label], dict(self.left),
                             self.durations)

    def finished(self, kind: str, seconds: float) -> None:
        """A cell that ran now, in `seconds`."""
        self.left[kind] -= 1
        self.durations.setdefault(kind, []).append(seconds)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
