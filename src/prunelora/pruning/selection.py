"""Which layers a request names: the one selector that pruning and LoRA both use.

A selection is layer types (`conv`, `linear`, `mha`, see `settings.LAYER_TYPES`), an optional
name regex (`{last}` stands for the highest block index) and the classifier head, which is left
out unless asked for: pruning its rows deletes whole classes, and LoRA trains it whole if at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.models.classifier import find_classifier
from prunelora.pruning.attention import PrunedAttention
from prunelora.pruning.settings import layer_classes


@dataclass(frozen=True)
class PrunedParam:
    """One prunable weight: `module.<param>` (e.g. a conv's `weight`, an MHA's `in_proj_weight`)."""

    name: str  # module name in the model
    module: nn.Module
    param: str

    @property
    def key(self) -> str:
        return f"{self.name}.{self.param}" if self.name else self.param


def classifier_name(model: nn.Module, name: str | None = None) -> str:
    """The classifier's module name: `name` if given, else found (`prunelora.models.classifier`)."""
    return find_classifier(model, name)[0]


def compile_pattern(model: nn.Module, pattern: str | None) -> re.Pattern | None:
    """A layer-name regex; `{last}` stands for the highest block index it can match in `model`.

    So `blocks\\.{last}\\.attn` targets the last encoder block of a ViT of any depth, and one
    recipe serves models of different depths.
    """
    if pattern is None:
        return None
    try:
        if "{last}" in pattern:
            probe = re.compile(pattern.replace("{last}", r"(?P<last>\d+)"))
            found = [int(m.group("last")) for name, _ in model.named_modules() if (m := probe.search(name))]
            pattern = pattern.replace("{last}", str(max(found)) if found else "(?!)")
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidInputError(f"layer pattern {pattern!r} is not a valid regular expression ({exc})") from None


def select_layers(model: nn.Module, types: Sequence[str], pattern: str | None = None, *,
                  head_name: str | None = None, include_head: bool = False, option: str = "prune_types",
                  pruned_attention: bool = False, inside_attention: bool = True,
                  what: str = "pattern") -> list[tuple[str, nn.Module]]:
    """`(name, module)` of every layer of `types` whose name `pattern` matches (regex, searched), in
    the model's order; the classifier (and anything inside it) only with `include_head`.

    Args:
        model: the model to select in.
        types: layer type names; an unknown one is refused naming `option`.
        pattern: a name regex (see `compile_pattern`), or None for every layer of `types`.
        head_name: the classifier's module name (found when None).
        include_head: select the classifier too.
        option: the option name an unknown type is reported under (`prune_types`, `lora_types`).
        pruned_attention: with `mha`, also select attentions that physical pruning turned into
            `PrunedAttention`s.
        inside_attention: select layers inside a selected `nn.MultiheadAttention` (its
            `out_proj`); LoRA does not, since adapting the attention adapts both projections.
        what: how the refusal names the pattern (`pattern`, `LoRA pattern`).

    Returns:
        The selected layers, never empty.

    Raises:
        InvalidInputError: an unknown type, a bad regex, or nothing selected.
    """
    wanted = layer_classes(types, option)
    if pruned_attention and "mha" in types:
        wanted += (PrunedAttention,)
    head_name = classifier_name(model, head_name)
    regex = compile_pattern(model, pattern)
    found: list[tuple[str, nn.Module]] = []
    attentions: list[str] = []
    for name, module in model.named_modules():
        if not include_head and (name == head_name or name.startswith(head_name + ".")):
            continue
        if any(name.startswith(a + ".") for a in attentions):
            continue
        if not isinstance(module, wanted) or (regex is not None and not regex.search(name)):
            continue
        if not inside_attention and isinstance(module, nn.MultiheadAttention):
            attentions.append(name)
        found.append((name, module))
    if not found:
        raise _nothing_selected(types, pattern, include_head, what)
    return found


def select_params(model: nn.Module, types: Sequence[str] = ("conv",), pattern: str | None = None,
                  include_head: bool = False, head_name: str | None = None) -> list[PrunedParam]:
    """The weights of the layers `select_layers` selects: a layer's `weight`, an `mha`'s packed q/k/v
    projection `in_proj_weight` (its `out_proj` is an `nn.Linear`, selected by `linear`).

    Raises:
        InvalidInputError: as `select_layers`, or when no selected layer has that weight.
    """
    out = []
    for name, module in select_layers(model, types, pattern, head_name=head_name, include_head=include_head):
        param = "in_proj_weight" if isinstance(module, nn.MultiheadAttention) else "weight"
        if getattr(module, param, None) is not None:  # an MHA with separate kdim/vdim weights has none
            out.append(PrunedParam(name, module, param))
    if not out:
        raise _nothing_selected(types, pattern, include_head, "pattern")
    return out


def _nothing_selected(types: Sequence[str], pattern: str | None, include_head: bool, what: str) -> InvalidInputError:
    return InvalidInputError(f"no layer of type {'/'.join(types)} matches {what} {pattern!r}"
                             + ("" if include_head else " (the head is excluded)"))
