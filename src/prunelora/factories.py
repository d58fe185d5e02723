"""Your model and your data on the command line: `--model-factory FILE.py:FUNC`, `--dataset-factory FILE.py:FUNC`.

A factory is a function in a Python file of yours. Loading it runs that file (as `python FILE.py`
would): nothing is unpickled, and nothing runs that you did not name on the command line. A
checkpoint records which factory built its model and data (`factory:/abs/path.py:FUNC`), but
loading it never runs that file on its own: the same `--model-factory` / `--dataset-factory` must
be given again, so a meta.json cannot make prunelora execute code.

- model factory: `FUNC(num_classes, in_channels, image_size)` or `FUNC()` returns an `nn.Module`
  classifier (its last `nn.Linear` is the classifier unless `--classifier-name` says otherwise); the
  same function serves the Python API's `model_factory=` (see `call_model_factory`);
- dataset factory: `FUNC()` returns `(train, test)` or `(train, test, class_names)`: map-style
  Datasets of `(input tensor, integer label)`, with your own transform (none is guessed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from prunelora.errors import InvalidInputError, MissingFileError
from prunelora.usercode import call_user, debug_enabled

PREFIX = "factory:"
_TRUSTED: dict[str, Callable] = {}
SIZES = ("num_classes", "in_channels", "image_size")  # what a model factory may take, by name
MODEL_SIGNATURE = "FUNC() or FUNC(num_classes, in_channels, image_size)"


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
    # the same name in every process (str hashes are salted per process): a spawned bench worker
    # unpickles the user's model classes under this module name
    module_name = f"prunelora_factory_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}"
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


def is_trusted(name: str) -> bool:
    """True when the canonical reference `name` was trusted in this process (its file was named)."""
    return name in _TRUSTED


def trust_callable(fn: Callable, what: str) -> str:
    """Trust a Python caller's own function and return the reference a checkpoint records for it.

    The function must be defined at the top level of a `.py` file, so that the recorded
    `factory:/abs/file.py:FUNC` names it again for `--model-factory` / `--dataset-factory`.

    Args:
        fn: the caller's factory function.
        what: `"model"` or `"dataset"`, for the messages.

    Returns:
        The canonical reference, now trusted in this process.

    Raises:
        InvalidInputError: a lambda, a nested function or a function of no `.py` file.
    """
    name = getattr(fn, "__name__", "")
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if (not name.isidentifier() or getattr(fn, "__qualname__", name) != name or path is None
            or not str(path).endswith(".py") or getattr(module, name, None) is not fn):
        raise InvalidInputError(f"{what} factory {fn!r} must be a function defined at the top level of a .py file "
                                "(the checkpoint records FILE.py:FUNCTION, to name it again later)")
    ref = canonical(f"{path}:{name}")
    _TRUSTED[ref] = fn
    return ref


def call_model_factory(fn: Callable, label: str, num_classes: int, in_channels: int, image_size: int,
                       **kwargs):
    """Build a model with a user's factory, whichever of the accepted signatures it has.

    A factory takes any of `num_classes`, `in_channels` and `image_size` by name (all three, as
    the command line documents; none, as a zero-argument `model_factory` of the Python API; or a
    `**kwargs` that takes them all); it is given those it names, plus `kwargs`. So one function
    serves `--model-factory` and `model_factory=` alike.

    Args:
        fn: the factory.
        label: how messages name it (e.g. `model factory my_models.py:build`).
        num_classes: the classifier's outputs.
        in_channels: image channels.
        image_size: image side.
        **kwargs: further keyword arguments (`--model-arg`).

    Returns:
        What the factory returned (the caller checks it is an `nn.Module`).

    Raises:
        InvalidInputError: a signature that cannot take these arguments, or a factory that fails.
    """
    sizes = dict(zip(SIZES, (num_classes, in_channels, image_size), strict=True))
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: call it as documented
        params = None
    if params is not None:
        if any(p.kind is p.VAR_KEYWORD for p in params):
            given = {**sizes, **kwargs}
        else:
            named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
            given = {k: v for k, v in sizes.items() if k in named} | kwargs
        try:
            inspect.signature(fn).bind(**given)
        except TypeError as exc:
            shown = f"({', '.join(p.name for p in params)})"
            raise InvalidInputError(f"{label} takes {shown}; accepted: {MODEL_SIGNATURE} "
                                    f"(any of these three by name) ({exc})") from None
    else:
        given = {**sizes, **kwargs}
    # the user's own code: an exception (a RecursionError too) is one line naming it, --debug aside
    return call_user(label, fn, **given)
