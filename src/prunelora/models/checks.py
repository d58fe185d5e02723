"""Checks of a model a user hands in, before anything trains or scores it.

The Python API takes any `nn.Module`; so does a model factory. What would otherwise fail deep inside
torch (a string given as the model, parameters on the `meta` device or in float64, images with
three channels for a one-channel model, a forward that recurses) or, worse, run and mislead (a
classifier with 32 outputs for 10 classes) is refused here in one line naming the problem.
Each check runs the model on at most a couple of records, in eval mode and without gradients.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from prunelora.data.generic import eval_view, fetch
from prunelora.errors import InvalidInputError, PruneLoRAError
from prunelora.models.classifier import _some_names, find_classifier, pool_features
from prunelora.usercode import debug_enabled, describe

__all__ = ["check_classifier", "check_layer_output", "check_model", "check_scores", "model_scores"]

_PROBE_RECORDS = 2  # records a check runs through the model (two: a batch dimension that is not 1)


def check_model(model, what: str = "model") -> None:
    """Refuse what cannot be trained or scored as a float32 classifier: not an `nn.Module`, a model
    whose tensors are on the `meta` device (no values), or floating tensors other than float32.

    Args:
        model: what the caller passed as the model.
        what: how the message names it (e.g. `"model factory my.py:build"`).

    Raises:
        InvalidInputError: one line naming the problem and what is accepted.
    """
    if not isinstance(model, nn.Module):
        shown = type(model).__name__
        if isinstance(model, (str, bytes, int, float)):
            shown += f" {repr(model)[:60]}"
        raise InvalidInputError(f"{what} must be an nn.Module (a trained classifier), not {shown}; a registered "
                                "name is built with prunelora.create_model(name, ...)")
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    on_meta = next((name for name, t in tensors if t.is_meta), None)
    if on_meta is not None:
        raise InvalidInputError(f"{what} has tensors on the meta device, which hold no values (e.g. {on_meta}); "
                                "materialise and load its weights first (model.to_empty(device='cpu') then "
                                "load_state_dict)")
    wrong = next(((name, t.dtype) for name, t in tensors if t.is_floating_point() and t.dtype != torch.float32),
                 None)
    if wrong is not None:
        raise InvalidInputError(f"{what} has {wrong[1]} tensors (e.g. {wrong[0]}); prunelora trains and scores "
                                "float32 models: call model.float()")


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@contextmanager
def _evaluating(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _sample(dataset, what_data: str) -> torch.Tensor:
    try:
        x, _ = fetch(eval_view(dataset), range(min(_PROBE_RECORDS, len(dataset))))
    except PruneLoRAError:
        raise
    except Exception as exc:  # records that do not collate into a batch: the user's data
        if debug_enabled():
            raise
        raise InvalidInputError(f"the records of {what_data} do not make a batch of inputs ({describe(exc)})") \
            from None
    return x


def model_scores(model: nn.Module, dataset, what: str = "the model", what_data: str = "the data") -> torch.Tensor:
    """The model's output on the first records of `dataset`: a `(records, classes)` tensor of scores.

    Args:
        model: the model (on any device; the records are moved to it).
        dataset: a non-empty map-style dataset of `(input, label)`.
        what: how the message names the model.
        what_data: how the message names the data (e.g. `"the test set"`).

    Returns:
        The scores, shape `(n, classes)` with n = min(2, len(dataset)).

    Raises:
        InvalidInputError: the forward pass fails on these inputs (wrong channels, size, dtype; an
            error or a recursion in the model's code), or returns something other than one row of
            scores per input.
    """
    x = _sample(dataset, what_data)
    with _evaluating(model):
        try:
            out = model(x.to(_device_of(model)))
        except PruneLoRAError:
            raise
        except Exception as exc:
            if debug_enabled():
                raise
            raise InvalidInputError(f"{what} cannot score {what_data}: its inputs are {x.dtype} of shape "
                                    f"{tuple(x.shape[1:])} and the forward pass raised {describe(exc)}") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != len(x):
        found = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidInputError(f"{what} returned {found} for a batch of {len(x)} inputs; a classifier returns "
                                "one row of class scores per input (batch, classes)")
    return out


def check_scores(model: nn.Module, dataset, num_classes: int, what: str = "the model",
                 what_data: str = "the data") -> None:
    """Refuse a model whose output on `dataset`'s first records is not `num_classes` scores per input.

    Args:
        model: the model.
        dataset: a non-empty dataset of `(input, label)`.
        num_classes: the scores each input must get.
        what: how the message names the model.
        what_data: how the message names the data.

    Raises:
        InvalidInputError: what `model_scores` refuses, or another number of scores.
    """
    width = model_scores(model, dataset, what, what_data).shape[1]
    if width != num_classes:
        raise InvalidInputError(f"{what} outputs {width} scores per input but {what_data} has {num_classes} "
                                "classes")


CLASSIFIER_OPTION = "--classifier-name (classifier= in Python)"


def check_classifier(model: nn.Module, name: str | None, num_classes: int, *,
                     advice: str | None = None) -> tuple[str, nn.Module]:
    """`(name, module)` of the model's classifier (`find_classifier`), refused unless it is an
    `nn.Linear` scoring `num_classes` classes.

    A model may hold another `nn.Linear` after its real head (an auxiliary projection): the last
    `nn.Linear` is then not the classifier, and training it as the head would freeze the real one.
    So a classifier whose `out_features` differ from the number of classes is refused, naming the
    module and how to name the right one; so is an empty name (the whole model) and a named module
    that is not an `nn.Linear`.

    Args:
        model: the model.
        name: the classifier's module name, as the user gave it (None: found by `find_classifier`).
        num_classes: the classes the model scores (its output width).
        advice: what the refusal of a wrong classifier tells the user to do (default: name the
            right one with `--classifier-name` / `classifier=`).

    Returns:
        The classifier's module name and the module.

    Raises:
        InvalidInputError: no classifier, or one that cannot be the classifier.
    """
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidInputError(f"classifier name {name!r} names no module; accepted: a module name of "
                                f"{type(model).__name__} such as {_some_names(model, 4)} ({CLASSIFIER_OPTION})")
    found_name, module = find_classifier(model, name)
    if name is not None and not isinstance(module, nn.Linear):
        raise InvalidInputError(f"classifier {found_name!r} ({type(module).__name__}) is not an nn.Linear; name "
                                f"the final nn.Linear layer with {CLASSIFIER_OPTION}{_candidates(model, num_classes)}")
    outputs = getattr(module, "out_features", None)
    if isinstance(outputs, int) and outputs != num_classes:
        how = "named" if name is not None else "found"
        todo = advice or f"name the real classifier with {CLASSIFIER_OPTION}{_candidates(model, num_classes)}"
        raise InvalidInputError(f"classifier {found_name!r} ({how}) has {outputs} outputs but the model scores "
                                f"{num_classes} classes; {todo}")
    return found_name, module


def _candidates(model: nn.Module, num_classes: int) -> str:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not names:
        return ""
    return f" (nn.Linear layers with {num_classes} outputs: {', '.join(names[:4])})"


def check_layer_output(model: nn.Module, name: str, module: nn.Module, dataset, what_data: str = "the data") -> None:
    """Refuse a layer whose output cannot be probed: it must give one feature vector (or map) per
    input, a tensor of at least two dimensions whose first is the batch (a tuple: its first item).

    Args:
        model: the model.
        name: the layer's module name, for the message.
        module: the layer.
        dataset: a non-empty dataset whose first records are run through the model.
        what_data: how the message names the data.

    Raises:
        InvalidInputError: the layer does not run in a forward pass, or gives another shape.
    """
    x = _sample(dataset, what_data)
    seen: list = []
    handle = module.register_forward_hook(lambda _m, _a, output: seen.append(output))
    try:
        with _evaluating(model):
            model(x.to(_device_of(model)))
    except PruneLoRAError:
        raise
    except Exception as exc:
        if debug_enabled():
            raise
        raise InvalidInputError(f"the model cannot score {what_data} ({describe(exc)})") from None
    finally:
        handle.remove()
    if not seen:
        raise InvalidInputError(f"probe layer {name!r} does not run in the model's forward pass; choose a module on "
                                "the main path")
    output = seen[0][0] if isinstance(seen[0], (tuple, list)) and seen[0] else seen[0]
    if not isinstance(output, torch.Tensor) or output.ndim < 2 or output.shape[0] != len(x):
        found = f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else type(output).__name__
        raise InvalidInputError(f"probe layer {name!r} gives {found} for a batch of {len(x)} inputs; a probed layer "
                                "must give features per input (batch, features...), e.g. a block or stage of the "
                                "model")
    pool_features(output)  # the probe's own pooling accepts it
