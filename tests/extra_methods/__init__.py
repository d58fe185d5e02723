"""Unlearning methods that only the tests register; each one gets the whole method-contract matrix.

To put a method through the matrix (tests/test_method_matrix.py) without writing a test for it, add
a module to this folder that registers it with `register_test_method` (the arguments of
`prunelora.methods.register_method`). The matrix imports every module here before it parametrises,
so the test files' order does not matter. The methods are kept out of prunelora's registry: the
matrix installs one only for the test that runs it, so `list_methods()` and `prunelora methods`
never show them anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil

from prunelora.methods import Capabilities, Method, register_method
from prunelora.methods import base as methods_base

TEST_METHODS: dict[str, Method] = {}


def register_test_method(name: str, config_cls: type, summary: str, *, capabilities: Capabilities):
    """`register_method`, with its checks, but into `TEST_METHODS` instead of prunelora's registry."""
    if name in TEST_METHODS:
        raise ValueError(f"test method {name!r} is registered twice")
    register = register_method(name, config_cls, summary, capabilities=capabilities)

    def wrap(fn):
        register(fn)
        TEST_METHODS[name] = methods_base._METHODS.pop(name)
        return fn

    return wrap


def load() -> dict[str, Method]:
    """Import every module of this folder (each registers its methods) and return them by name."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return dict(TEST_METHODS)
