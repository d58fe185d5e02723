"""Unlearning methods: one module each, registered by name (`list_methods()`).

Every module in this package registers itself on import, so adding a method is one new file.
"""

import importlib
import pkgutil

from prunelora.methods.base import (
    Method,
    MethodConfig,
    MethodContext,
    UnlearnResult,
    get_method,
    list_methods,
    register_method,
    unlearn,
)

_NOT_METHODS = {"base", "common", "cli"}
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _NOT_METHODS:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Method", "MethodConfig", "MethodContext", "UnlearnResult", "get_method", "list_methods",
           "register_method", "unlearn"]
