"""Unlearning methods: one module each, registered by name (`list_methods()`).

A method module registers itself on import (`@register_method` on its run function, with its
config dataclass and declared `Capabilities`). The package imports the method modules by name
below, statically, so that the import graph reads as it runs and a helper module (`base`,
`common`, ...) is never mistaken for a method: adding a method is one new file plus its name here
(tests/test_method_contract.py fails if a module that registers a method is missing).
"""

from prunelora.methods import (  # noqa: F401  (imported for their registrations)
    cf_k,
    cmf,
    damp,
    eu_k,
    finetune,
    ga,
    l1_sparse,
    lora,
    neggrad_plus,
    opc,
    prune_finetune,
    prunelora,
    random_label,
    retrain,
    salun,
    scrub,
    ssd,
)
from prunelora.methods.base import (
    Capabilities,
    Method,
    MethodConfig,
    MethodContext,
    MethodRecord,
    PruningChoice,
    RunCost,
    TrainingOptions,
    UnlearnResult,
    get_method,
    list_methods,
    register_method,
    unlearn,
)

__all__ = ["Capabilities", "Method", "MethodConfig", "MethodContext", "MethodRecord", "PruningChoice", "RunCost",
           "TrainingOptions",
           "UnlearnResult", "get_method", "list_methods", "register_method", "unlearn"]
