"""What `evaluate()` may keep from one call to the next, where nothing it measures can differ.

A benchmark evaluates many models of one architecture against the same two references (the
original and a retrain) on the same splits. Two measurements repeat there without depending on the
judged model's weights:

- **the references' test-set features**, which CKA compares every judged model with: the same
  model on the same images gives the same features. They are kept under a fingerprint of the
  model (a hash of its structure and of every parameter and buffer), the layers, the device, the
  torch thread count and the test datasets themselves (held by the cache, so that their identity
  cannot pass to other data while an entry lives);
- **the inference throughput**, which depends on what the model computes (its module structure
  and tensor shapes), the input's shape, the device and the thread count, not on the values of its
  weights (mask-pruned zeros still multiply): measured once per such structure, then reused.

Nothing else is cached: every judged model's own outputs, features, attacks, probes and relearning
are computed at each call. The features are kept within a byte budget, least recently used first
out.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from prunelora.training.loop import resolve_device

__all__ = ["EvaluationCache", "fingerprint", "structure_key"]


def structure_key(model: nn.Module) -> str:
    """What fixes a model's cost per image: its modules (their `repr`, which names each module's
    type and settings) and every parameter's and buffer's name, shape and dtype; not their values."""
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(repr(model).encode())
    for name, tensor in model.state_dict(keep_vars=False).items():
        hasher.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
    return hasher.hexdigest()


def fingerprint(model: nn.Module) -> str:
    """A hash of the model's structure (`structure_key`) and of the bytes of every parameter and
    buffer: equal for the same model, or a copy of it, saved and loaded."""
    hasher = hashlib.blake2b(structure_key(model).encode(), digest_size=16)
    for tensor in model.state_dict(keep_vars=False).values():
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        hasher.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return hasher.hexdigest()


class EvaluationCache:
    """Reference features and throughputs kept between `evaluate()` calls (see the module docstring).

    Args:
        max_feature_bytes: the features kept at most, in bytes (least recently used dropped first).
        max_entries: the models whose features are kept at most (the same order).

    Example:
        ```python
        cache = EvaluationCache()
        for model in unlearned_models:  # each compared by CKA with the same original
            evaluate(model, splits, original_model=original, cache=cache)
        ```
    """

    def __init__(self, max_feature_bytes: int = 1 << 30, max_entries: int = 8) -> None:
        self.max_feature_bytes, self.max_entries = max_feature_bytes, max_entries
        self._features: OrderedDict[tuple, tuple[dict, tuple]] = OrderedDict()
        self._throughput: dict[tuple, float] = {}
        self.hits = {"features": 0, "throughput": 0}

    def features(self, model: nn.Module, splits, layers: list[str], device,
                 compute: Callable[[], dict]) -> dict:
        """`model`'s test-set features at `layers` (`compute()` when not kept yet)."""
        data = (splits.test_retain, splits.test_forget)
        key = (fingerprint(model), tuple(layers), str(resolve_device(device)), torch.get_num_threads(),
               *(id(d) for d in data))
        if key in self._features:
            self._features.move_to_end(key)
            self.hits["features"] += 1
            return self._features[key][0]
        found = compute()
        self._features[key] = (found, data)  # the datasets are held: their ids stay theirs
        while len(self._features) > 1 and (len(self._features) > self.max_entries
                                           or self._feature_bytes() > self.max_feature_bytes):
            self._features.popitem(last=False)
        if self._feature_bytes() > self.max_feature_bytes:  # one entry over the budget is not kept
            self._features.clear()
        return found

    def throughput(self, model: nn.Module, sample: torch.Tensor, device, compute: Callable[[], float]) -> float:
        """`model`'s measured throughput, or that of the first model of the same structure measured
        with the same input shape, device and thread count (`compute()` measures it)."""
        key = (structure_key(model), tuple(sample.shape[1:]), str(resolve_device(device)), torch.get_num_threads())
        if key in self._throughput:
            self.hits["throughput"] += 1
            return self._throughput[key]
        self._throughput[key] = value = compute()
        return value

    def _feature_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for found, _ in self._features.values() for t in found.values())
