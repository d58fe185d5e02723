"""The features a layer computes, captured with a hook on any model: what the representation
probe reads (`probe.py`), the classifier's input by default.

`model_pass` is what `evaluate()` runs: one forward pass per split, whose test-set passes also
capture every feature the probes and the representation metrics read (hooks on the same pass:
the logits are those `predict` gives, and no extra pass over the test set is made for features).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from prunelora.data.generic import eval_view, make_loader
from prunelora.errors import InvalidInputError
from prunelora.models.classifier import find_classifier, find_module, pool_features
from prunelora.training import resolve_device
from prunelora.training.distributed import is_distributed
from prunelora.training.loop import predict

__all__ = ["CLASSIFIER_INPUT_KEY", "SPLIT_PARTS", "capture_features", "classifier_inputs", "model_pass",
           "pool_features", "features_of_test_set"]

CLASSIFIER_INPUT_KEY = None
"""The key of the classifier's input among captured features (module outputs are keyed by name;
None cannot collide with a module called "classifier")."""

SPLIT_PARTS = ("forget", "retain", "test_retain", "test_forget", "val")
"""The parts of a `Splits` that `evaluate()` measures, in its order."""


@contextmanager
def _capture(module: nn.Module, where: str, store: list[torch.Tensor]):
    if where == "input":
        def hook(_module, args):
            store.append(torch.flatten(args[0], 1).detach().float().cpu())
        handle = module.register_forward_pre_hook(hook)
    else:
        def hook(_module, _args, output):  # type: ignore[misc]
            store.append(pool_features(output).detach().float().cpu())
        handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def capture_features(model: nn.Module, dataset, module: nn.Module, where: str = "input", *,
                     batch_size: int = 256, device: str | torch.device | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """`(features, targets)` of every sample of `dataset`: what enters `module` (`where="input"`,
    flattened) or what leaves it (`"output"`, pooled by `pool_features`), in eval mode, batched,
    without gradients. Features are float32 on the CPU, in the dataset's order."""
    if where not in ("input", "output"):
        raise InvalidInputError(f"where {where!r} must be 'input' or 'output'")
    device = resolve_device(device)
    was_training = model.training
    model.to(device).eval()
    store: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    try:
        with _capture(module, where, store):
            for x, y in make_loader(eval_view(dataset), batch_size=batch_size):
                before = len(store)
                model(x.to(device))
                if len(store) != before + 1:
                    raise InvalidInputError(f"the probed module ran {len(store) - before} times in one forward pass "
                                            "(expected once); choose a module on the main path")
                targets.append(y)
    finally:
        model.train(was_training)
    if not store:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(store), torch.cat(targets)


def classifier_inputs(model: nn.Module, dataset, *, name: str | None = None, batch_size: int = 256,
                      device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`(features, targets)`: the classifier's input (see `find_classifier`) for every sample."""
    _, module = find_classifier(model, name)
    return capture_features(model, dataset, module, "input", batch_size=batch_size, device=device)


@contextmanager
def _capturing(model: nn.Module, layers: list[str]):
    """Hooks that store, at every forward pass of `model`, each of `layers`' outputs (pooled by
    `pool_features`) and the classifier's input (key `CLASSIFIER_INPUT_KEY`), float32 on the CPU.
    Yields the store `{key: [one tensor per pass]}`; a module that runs other than once per pass
    is refused (its features would not line up with the images)."""
    modules = {name: find_module(model, name) for name in layers}
    _, head = find_classifier(model)
    store: dict[str | None, list[torch.Tensor]] = {name: [] for name in [*layers, CLASSIFIER_INPUT_KEY]}
    passes = [0]

    def output_hook(name: str):
        return lambda _m, _a, out: store[name].append(pool_features(out).detach().float().cpu())

    def after_pass(_m, _a, _o):
        passes[0] += 1
        for name, values in store.items():
            if len(values) != passes[0]:
                shown = "the classifier's input" if name is None else f"module {name!r}"
                raise InvalidInputError(f"{shown} ran {len(values) - passes[0] + 1} times in one forward pass "
                                        "(expected once); probe a module on the main path")

    with ExitStack() as stack:
        for name, module in modules.items():
            stack.callback(module.register_forward_hook(output_hook(name)).remove)
        stack.callback(head.register_forward_pre_hook(
            lambda _m, args: store[CLASSIFIER_INPUT_KEY].append(torch.flatten(args[0], 1).detach().float().cpu())).remove)
        stack.callback(model.register_forward_hook(after_pass).remove)
        yield store


def _joined(parts: list[dict[str | None, list[torch.Tensor]]]) -> dict[str | None, torch.Tensor]:
    return {key: torch.cat([t for part in parts for t in part[key]]) for key in parts[0]}


def features_of_test_set(model: nn.Module, splits, layers: list[str], *, device: str | torch.device | None = None
                  ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str | None, torch.Tensor]]:
    """The logits of the test set's two parts and, from the same passes, the features of the whole
    test set (test-retain then test-forget: `prunelora.evaluation.probe.whole_test_set`'s order).

    Args:
        model: any classifier (`find_classifier` must find its head).
        splits: its splits; `test_retain` and `test_forget` are passed through the model.
        layers: module names whose outputs are captured (pooled); the classifier's input always is,
            under `CLASSIFIER_INPUT_KEY`.
        device: where to run (None: the default device).

    Returns:
        `({"test_retain": (logits, targets), "test_forget": ...}, {key: (n, d) float32 CPU features})`;
        the logits are `predict`'s.

    Raises:
        InvalidInputError: a layer the model lacks, or a module that runs other than once per pass.
    """
    outputs, stores = {}, []
    for part in ("test_retain", "test_forget"):
        with _capturing(model, layers) as store:
            outputs[part] = _predict_here(model, getattr(splits, part), device)
        stores.append(store)
    return outputs, _joined(stores)


@torch.no_grad()
def _predict_here(model: nn.Module, dataset, device) -> tuple[torch.Tensor, torch.Tensor]:
    """`predict` in this process alone: the same batches and calls, so the same logits, but no share
    of the images per process (the features are read by the main process alone, and `predict`'s
    gathering would wait for the others)."""
    if is_distributed():
        device = resolve_device(device)
        was_training = model.training
        model.to(device).eval()
        try:
            logits, targets = [], []
            for x, y in make_loader(eval_view(dataset), batch_size=256):
                logits.append(model(x.to(device)).float().cpu())
                targets.append(y)
        finally:
            model.train(was_training)
        return (torch.cat(logits) if logits else torch.empty(0, 0),
                torch.cat(targets) if targets else torch.empty(0, dtype=torch.long))
    return predict(model, dataset, device=device)


def model_pass(model: nn.Module, splits, layers: list[str] | None, *, device: str | torch.device | None = None
               ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str | None, torch.Tensor] | None]:
    """`evaluate()`'s forward passes: the logits of every part of `splits` (`SPLIT_PARTS`, as
    `predict` gives them) and, when `layers` is not None, the test set's features (`features_of_test_set`)
    from the same passes.

    Features are not captured (None) when `layers` is None, when no test image is of a forgotten
    class (nothing reads them then) or under several processes (each predicts a share of the
    images; the probes then make their own pass on the main process).
    """
    capture = layers is not None and len(splits.test_forget) > 0 and not is_distributed()
    features = None
    outputs = {}
    for part in SPLIT_PARTS:
        if part == "test_retain" and capture:
            tested, features = features_of_test_set(model, splits, layers, device=device)
            outputs.update(tested)
        elif part not in outputs:
            outputs[part] = predict(model, getattr(splits, part), device=device)
    return {part: outputs[part] for part in SPLIT_PARTS}, features
