"""Errors a user can cause. The CLI prints their one-line message and exits with status 2."""

from __future__ import annotations

import difflib
import os
import reprlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class PruneLoRAError(Exception):
    """Base of every error caused by bad input (never by a bug in prunelora)."""


class InvalidInputError(PruneLoRAError, ValueError):
    """A value, option or file content that prunelora does not accept."""


class MissingFileError(PruneLoRAError, FileNotFoundError):
    """A file or directory that should exist does not."""

    def __str__(self) -> str:  # FileNotFoundError would otherwise print "[Errno ...]" tuples
        return str(self.args[0]) if self.args else ""


class CheckpointError(InvalidInputError):
    """A checkpoint that is truncated, not safetensors, or does not fit the expected model."""


class OutputError(PruneLoRAError, OSError):
    """An output that cannot be written: a read-only or full disk, a parent that is a file, a
    dangling symbolic link. Reported before any work where it can be foreseen."""


def parse_text_file(path: str | os.PathLike, parse: Callable[[str], Any], syntax_error: type[Exception],
                    describe: Callable[[Exception], str], error: type[PruneLoRAError], name: str,
                    too_deep: str = "nested too deeply") -> Any:
    """`parse` of a UTF-8 file's text; each way its content can be unreadable is one line of `error`
    starting with `name`: a syntax error (`describe(exc)`, e.g. "not valid JSON (...)"), bytes that
    are not UTF-8, or nesting deep enough to exhaust the parser's recursion."""
    try:
        return parse(Path(path).read_bytes().decode("utf-8"))
    except syntax_error as exc:
        raise error(f"{name} is {describe(exc)}") from None
    except UnicodeDecodeError:
        raise error(f"{name} is not UTF-8 text") from None
    except RecursionError:
        raise error(f"{name} is {too_deep}") from None


def did_you_mean(word: object, accepted: Iterable[object]) -> str:
    """The hint a refusal adds for a near miss: ` (did you mean 'epochs'?)` when `word` is close
    to one of `accepted` (difflib's ratio of at least 0.6), else the empty string.

    Args:
        word: what the user wrote (an option, a method, a model, a key).
        accepted: the names that would have been accepted.

    Returns:
        The hint, with its leading space, or "".
    """
    close = difflib.get_close_matches(str(word), [str(a) for a in accepted], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` for an error message, bounded in length and in the work it takes.

    A value read from a file can be huge (a long string, a deep or wide structure): the message
    naming it must stay one short line, and building it must not cost what the value would if
    expanded. `reprlib` looks at only a few items per level and a few levels; the result is then cut
    to `limit` characters.

    Args:
        value: anything, as read from a config or a checkpoint.
        limit: the most characters returned (an ellipsis marks a cut).

    Returns:
        A one-line representation of at most `limit` characters.
    """
    try:
        text = _SHORT.repr(value)
    except (ValueError, RecursionError):  # e.g. an int past Python's digit limit for str()
        text = f"<{type(value).__name__}>"
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 3, 50, 50
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 6
    short.maxlong = 40
    return short


_SHORT = _short_repr()
