"""Text from outside (checkpoints, configs, paths) made safe to print on a terminal.

A checkpoint's meta.json is anyone's file: its strings may hold escape sequences that clear the
screen, retitle the terminal or move the cursor to overwrite what was printed before, and rich's
markup (`[/]`, `[link=...]`) that either crashes rich or restyles the output. Every string that did
not come from prunelora itself passes through `printable` before it is printed, and rich tables are
printed by `console()`, whose markup and emoji codes are off.

Only the standard library and rich (imported when `console` is called): `prunelora.cli.app` imports
this module at start-up.
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Unicode categories never printed as they are: control (C0, DEL, C1), format (bidi overrides and
# isolates, zero-width characters), line and paragraph separators, surrogates, private use, unassigned.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(value: Any, limit: int | None = None) -> str:
    """`str(value)` with every control or invisible formatting character written as an escape
    (ESC becomes the four characters `\\x1b`, a newline `\\x0a`), so the terminal shows the text and
    never acts on it; cut to `limit` characters when given (an ellipsis marks the cut).

    Args:
        value: a string (or anything with a `str`) from a checkpoint, a config or a path.
        limit: the most characters returned; None keeps it whole.

    Returns:
        One line of visible characters.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and text.isascii():  # the common case, at C speed
        safe = text
    else:
        safe = "".join(_escape(c) if unicodedata.category(c) in _ESCAPED_CATEGORIES else c for c in text)
    if limit is not None and len(safe) > limit:
        return safe[:max(limit - 3, 0)] + "..."
    return safe


def console(**options: Any):  # noqa: ANN201  (rich is imported here, not at start-up)
    """A rich `Console` that prints strings literally: no markup (`[/]` in a class name is text),
    no emoji codes. `options` go to `Console` (e.g. width)."""
    from rich.console import Console

    return Console(markup=False, emoji=False, **options)
