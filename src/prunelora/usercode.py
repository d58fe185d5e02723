"""Code of yours that prunelora runs: a model or dataset factory, a dataset's `__getitem__`.

An exception raised there is your code's, not prunelora's: it becomes one line naming what was
running (the factory, the data set and record) and the error, like every other mistake a user can
make. `PRUNELORA_DEBUG=1` (or `prunelora --debug`) lets the original exception through instead, with
its traceback. Only the standard library is imported here: the lowest layers use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prunelora.errors import InvalidInputError, PruneLoRAError

DEBUG_ENV = "PRUNELORA_DEBUG"
DEBUG_HINT = f"{DEBUG_ENV}=1 or --debug shows the traceback"
_MESSAGE_LIMIT = 200  # an exception's text is the user's: a huge one must not flood the one line

_debugging: list[bool] = []  # set by `debugging()` for the length of one command

T = TypeVar("T")


def debug_enabled() -> bool:
    """Whether the user asked for tracebacks.

    Returns:
        True inside `debugging()`, or when `PRUNELORA_DEBUG` is set to anything but empty or 0.
    """
    return bool(_debugging) or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


@contextlib.contextmanager
def debugging(on: bool = True) -> Iterator[None]:
    """Within the block, errors of user code keep their traceback.

    Args:
        on: whether to turn debugging on (False: a no-op, so that callers need no branch).

    Yields:
        Nothing; debugging ends when the block does.
    """
    if on:
        _debugging.append(True)
    try:
        yield
    finally:
        if on:
            _debugging.pop()


def describe(exc: BaseException) -> str:
    """An exception for a one-line report.

    Args:
        exc: the exception.

    Returns:
        `TypeName: first line of its message`, at most ~200 characters of the message.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def user_error(what: str, exc: BaseException) -> InvalidInputError:
    """The one-line error for an exception of user code.

    Args:
        what: what was running (e.g. `"model factory f.py:build"`).
        exc: what it raised.

    Returns:
        The `InvalidInputError` to raise: `what`, the exception and how to see its traceback.
    """
    return InvalidInputError(f"{what} raised {describe(exc)} ({DEBUG_HINT})")


def call_user(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, where `fn` is user code: any exception it raises (a RecursionError
    included) becomes one `InvalidInputError` line naming `what`, unless debugging is on.

    prunelora's own errors (a factory calling prunelora wrongly) pass through unchanged, and so do
    KeyboardInterrupt and SystemExit (not `Exception`s).

    Args:
        what: what is running, for the message (e.g. `"dataset factory my_data.py:build"`).
        fn: the user's callable.
        *args: its positional arguments.
        **kwargs: its keyword arguments.

    Returns:
        What `fn` returned.

    Raises:
        InvalidInputError: `fn` raised (one line: `what`, the exception's type and first line).
    """
    try:
        return fn(*args, **kwargs)
    except PruneLoRAError:
        raise
    except Exception as exc:
        if debug_enabled():
            raise
        raise user_error(what, exc) from None
