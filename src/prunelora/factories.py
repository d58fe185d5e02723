"""Your model and your data on the command line: `--model-factory FILE.py:FUNC`, `--dataset-factory FILE.py:FUNC`.

A factory is a function in a Python file of yours. Loading it runs that file (as `python FILE.py`
would): nothing is unpickled, and nothing runs that you did not name on the command line. A
checkpoint records which factory built its model and data (`factory:/abs/path.py:FUNC`), but
loading it never runs that file on its own: the same `--model-factory` / `--dataset-factory` must
be given again, so a meta.json cannot make prunelora execute code.

- model factory: `FUNC(num_classes, in_channels, image_size)` returns an `nn.Module` classifier
  (its last `nn.Linear` is the classifier unless `--classifier-name` says otherwise);
- dataset factory: `FUNC()` returns `(train, test)` or `(train, test, class_names)`: map-style
  Datasets of `(input tensor, integer label)`, with your own transform (none is guessed).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from prunelora.errors import InvalidInputError, MissingFileError
from prunelora.usercode import debug_enabled

PREFIX = "factory:"
_TRUSTED: dict[str, Callable] = {}


def canonical(ref: str) -> str:
    """`factory:/absolute/path.py:FUNC` for `path.py:FUNC` (or an already canonical reference)."""
    text = ref[len(PREFIX):] if ref.startswith(PREFIX) else ref
    path, sep, func = text.rpartition(":")
    if not sep or not path or not func or not func.isidentifier():
        raise InvalidInputError(f"factory {ref!r} is not FILE.py:FUNCTION (e.g. my_models.py:build)")
    if not path.endswith(".py"):
        raise InvalidInputError(f"factory {ref!r}: {path!r} is not a .py file")
    return f"{PREFIX}{Path(path).resolve()}:{func}"


def load_factory(ref: str) -> str:
    """Import the file `ref` names, check its function, and trust it for this process.

    Returns the canonical reference, which `get_factory` then accepts (as a model or dataset name).
    """
    name = canonical(ref)
    if name in _TRUSTED:
        return name
    path_text, _, func = name[len(PREFIX):].rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise MissingFileError(f"factory file {str(path)!r} does not exist")
    module_name = f"prunelora_factory_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's own file: say where it failed, in one line
        del sys.modules[module_name]
        if debug_enabled():
            raise
        raise InvalidInputError(f"factory file {str(path)!r} failed to load: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise InvalidInputError(f"factory file {str(path)!r} has no function {func!r}")
    _TRUSTED[name] = fn
    return name


def untrust_all() -> None:
    """Forget every trusted factory (each command-line invocation trusts only what it names)."""
    _TRUSTED.clear()


def get_factory(name: str, flag: str) -> Callable:
    """The trusted function behind a canonical reference, or one line saying which flag trusts it."""
    fn = _TRUSTED.get(name)
    if fn is None:
        shown = name[len(PREFIX):]
        raise InvalidInputError(f"this comes from your factory {shown}; pass {flag} {shown} to run that file "
                                "(a checkpoint never runs code on its own)")
    return fn
