"""LoRA: target selection, the sparsity-preserving delta, and the merge.

Two backends. `peft` (the default) wraps each target in peft's LoRA layer: the adapter is a
second, low-rank path `x -> B(A(dropout(x)))` beside the frozen layer. `weight` adds the
low-rank update to the weight itself, `W0 + s·B@A` (a `torch.nn.utils.parametrize`
parametrization), so each layer still runs one convolution or matmul. On a 2-core CPU, a
ResNet-8 step at batch 128 costs 217 ms with peft's conv LoRA (134 ms without its dropout)
and 77 ms with the weight form, against 92 ms for full fine-tuning (`benchmarks/lora_speed.py`).
The weight form has no input to drop, so it requires `dropout=0`. Attention
(`nn.MultiheadAttention`) is always adapted in the weight form: peft adds its out_proj update
twice and ignores its dropout (see `LoraSettings.attention_in_weight_form`).

Sparsity is preserved by construction: for a layer whose output channels were pruned, the LoRA
update's rows for those channels are masked (a parametrization on `lora_B.weight`), so the trained
model and the merged model are the same function and the merged weights keep their zeros. The
reference code merged a dense B·A and so refilled every pruned channel. With dead-channel masks
(the default) the masks also cover biases and norm weights: LoRA never trains those, and the merge
multiplies every mask again, so a dead channel stays dead in the merged model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from prunelora.errors import InvalidInputError
from prunelora.pruning.masks import bake_masks, multiply_masks
from prunelora.pruning.selection import classifier_name, select_layers
from prunelora.pruning.settings import layer_classes
from prunelora.training.distributed import barrier, is_main_process

LORA_BACKENDS = ("peft", "weight")


def load_peft() -> ModuleType:
    """The `peft` module, imported on first use. It pulls in transformers (seconds of start-up), so
    it is not imported with this module: listing the methods, or a command that never adapts a
    layer, does not pay for it. `unlearn` calls this before it starts a LoRA method's clock."""
    import peft

    return peft


@dataclass(frozen=True)
class LoraSettings:
    """One LoRA request, checked on construction: the one place where LoRA options are validated
    (the methods' `lora_*` options build one; the messages name the options as users set them).

    `rank` r and `alpha` (the update is scaled by alpha/r), `dropout` on the adapter's input,
    `types`/`pattern`: which layers (`conv`, `linear`, `mha`; a name regex), `train_head`: the
    classifier trains whole beside the adapters, `backend`: `peft` or `weight` (see the module doc).
    """

    # Each field's help is the command line's: the methods' `lora_*` options are generated from
    # these fields (`methods.common.LoraOptions`), named as `OPTION_NAMES` says.
    rank: int = field(default=8, metadata={"help": "rank r of each LoRA update"})
    alpha: float = field(default=16, metadata={"help": "LoRA scale: the update is multiplied by alpha/rank"})
    dropout: float = field(default=0.1, metadata={"help": (
        "dropout on each adapter's input (0 for the weight backend and for attention)")})
    types: tuple[str, ...] = field(default=("conv",), metadata={"help": (
        "layer types adapted, comma-separated: conv, linear, mha (attention)")})
    pattern: str | None = field(default=None, metadata={"help": (
        "only layers whose name matches this regex ({last} stands for the highest block index)")})
    train_head: bool = field(default=True, metadata={"help": "train the classifier whole beside the adapters"})
    backend: str = field(default="peft", metadata={"help": (
        "peft (an adapter path beside each layer, the paper's) or weight (W0 + (alpha/r)*B@A in the weight "
        "itself: one convolution per layer, faster; needs --lora-dropout 0)")})

    OPTION_NAMES: ClassVar[dict[str, str]] = {
        "rank": "lora_rank", "alpha": "lora_alpha", "dropout": "lora_dropout", "types": "lora_types",
        "pattern": "lora_pattern", "train_head": "train_head", "backend": "lora_backend"}

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", tuple(self.types))
        if self.backend not in LORA_BACKENDS:
            raise InvalidInputError(f"lora_backend {self.backend!r} is not one of {', '.join(LORA_BACKENDS)}")
        if self.backend == "weight" and self.dropout:
            raise InvalidInputError(f"lora_dropout {self.dropout} needs the peft backend: the weight form "
                                    "(W0 + s·B@A) has no layer input to drop; set lora_dropout to 0")
        if self.rank < 1:
            raise InvalidInputError(f"lora_rank {self.rank} must be >= 1")
        if not self.alpha > 0:
            raise InvalidInputError(f"lora_alpha {self.alpha} must be > 0 (the update is scaled by alpha/rank)")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError(f"lora_dropout {self.dropout} is outside [0, 1)")
        layer_classes(self.types, "lora_types")
        if "mha" in self.types:
            # Attention is always adapted in the weight form (see `attention_in_weight_form`).
            if self.dropout:
                raise InvalidInputError(
                    f"lora_dropout {self.dropout} cannot apply to attention (lora_types mha): attention is "
                    "adapted as W + (alpha/r)·B@A, which has no layer input to drop (peft silently ignores it "
                    "there); set lora_dropout to 0")
            if self.backend == "peft" and set(self.types) != {"mha"}:
                raise InvalidInputError(
                    f"lora_types {','.join(self.types)}: with the peft backend attention (mha) cannot be "
                    "combined with other layer types; use lora_backend weight for all of them")

    @property
    def attention_in_weight_form(self) -> bool:
        """True when the targets are attention modules, which are adapted in the weight form whatever
        the backend. peft (0.21) adds an `nn.MultiheadAttention`'s out_proj update twice (W + 2·ΔW,
        with the gradient through one copy) and ignores its dropout, so through peft the same recipe
        would train another function than the weight backend's W + (alpha/r)·B@A."""
        return "mha" in self.types


def lora_targets(model: nn.Module, types: Sequence[str], pattern: str | None,
                 head_name: str | None = None) -> list[str]:
    """Names of the modules LoRA will wrap (never the classifier, which trains whole if at all),
    chosen by the selector pruning uses (`prunelora.pruning.selection.select_layers`). Inside a
    targeted MultiheadAttention nothing else is targeted: its in_proj and out_proj are both adapted."""
    return [name for name, _ in select_layers(model, types, pattern, head_name=head_name, option="lora_types",
                                              inside_attention=False, what="LoRA pattern")]


def max_lora_rank(module: nn.Module) -> int:
    """The largest useful rank of a LoRA update of `module`: the rank of its weight matrix
    (out x fan-in; a MultiheadAttention: its embedding width)."""
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim
    weight = getattr(module, "weight", None)
    if weight is None or weight.ndim < 2:
        return 0
    return min(weight.shape[0], weight[0].numel())


def check_lora_rank(model: nn.Module, settings: LoraSettings, head_name: str | None = None) -> None:
    """Refuse a rank above what a targeted layer of `model` allows, naming the layer, before any
    adapter is allocated (a rank of 100,000 would otherwise allocate until memory runs out)."""
    for name in lora_targets(model, settings.types, settings.pattern, head_name):
        limit = max_lora_rank(model.get_submodule(name))
        if settings.rank > limit:
            raise InvalidInputError(f"LoRA rank {settings.rank} exceeds what layer {name} allows ({limit}: its "
                                    f"weight is {limit} wide at most); use --lora-rank {limit} or less, or "
                                    "--lora-pattern to leave that layer out")


class _RowMask(nn.Module):
    """`B -> B * row_mask`: LoRA's update may not touch pruned output channels."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("rows", rows)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.rows.view(-1, *([1] * (weight.ndim - 1)))


def _is_row_mask(mask: torch.Tensor) -> bool:
    """True when every output channel is kept or pruned whole (structured pruning)."""
    flat = mask.flatten(1)
    return bool(((flat == flat[:, :1]).all()).item())


def _channel_rows(mask: torch.Tensor) -> torch.Tensor:
    """1 for output channels that keep any weight, 0 for channels pruned whole."""
    return (mask.flatten(1) != 0).any(dim=1).to(mask.dtype)


class LoraWeight(nn.Module):
    """The weight-form LoRA update as a parametrization: `W -> W + scale·(rows⊙B)@A`.

    `A` is (rank, fan_in) and starts like peft's (Kaiming-uniform), `B` is (out, rank) and
    starts at zero, so the adapted model starts as the original. `rows` (1 per output channel
    that may change) keeps pruned channels at exactly zero. `elements` (the weight's own shape),
    for unstructured pruning, masks the update weight by weight, so pruned weights stay zero while
    training and the merged model is the trained one.
    """

    def __init__(self, weight: torch.Tensor, rank: int, scale: float, rows: torch.Tensor | None = None,
                 elements: torch.Tensor | None = None) -> None:
        super().__init__()
        out_features, fan_in = weight.shape[0], weight[0].numel()
        self.lora_A = nn.Parameter(torch.empty(rank, fan_in, device=weight.device, dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, device=weight.device, dtype=weight.dtype))
        self.scale = scale
        self.register_buffer("rows", rows.to(weight.device, weight.dtype) if rows is not None else None)
        self.register_buffer("elements", elements.to(weight.device, weight.dtype).reshape(out_features, fan_in)
                             if elements is not None else None)

    def masked_B(self) -> torch.Tensor:
        """`lora_B` with the rows of pruned output channels at zero."""
        return self.lora_B if self.rows is None else self.lora_B * self.rows.view(-1, 1)

    def delta(self) -> torch.Tensor:
        update = self.scale * (self.masked_B() @ self.lora_A)
        return update if self.elements is None else update * self.elements

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.delta().view_as(weight)


def _adapted_weights(model: nn.Module, targets: list[str]) -> list[tuple[str, nn.Module, str]]:
    """(module name, module, parameter name) of every weight the weight backend adapts."""
    found = []
    for name in targets:
        module = model.get_submodule(name)
        if isinstance(module, nn.MultiheadAttention):  # both projections, as peft's MHA layer does
            found += [(name, module, "in_proj_weight"), (f"{name}.out_proj", module.out_proj, "weight")]
        else:
            found.append((name, module, "weight"))
    return found


def _add_weight_lora(model: nn.Module, settings: LoraSettings, targets: list[str],
                     masks: dict[str, torch.Tensor] | None, head_name: str) -> nn.Module:
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}  # restored at the merge
    for param in model.parameters():
        param.requires_grad_(False)
    scale = settings.alpha / settings.rank
    for name, module, param_name in _adapted_weights(model, targets):
        mask = (masks or {}).get(f"{name}.{param_name}")
        rows = _channel_rows(mask) if mask is not None else None
        # a mask that is not whole rows (unstructured pruning) masks the update weight by weight
        elements = mask if mask is not None and not _is_row_mask(mask) else None
        weight = getattr(module, param_name)
        if weight is None:  # an attention with separate q/k/v weights (kdim/vdim)
            raise InvalidInputError(f"LoRA weight backend: {name} has no {param_name}; use lora_backend peft")
        parametrize.register_parametrization(module, param_name,
                                             LoraWeight(weight, settings.rank, scale, rows, elements))
    if settings.train_head:
        for param in model.get_submodule(head_name).parameters():
            param.requires_grad_(True)
    model.lora_settings = settings  # how the snapshot names the adapters
    model.lora_head_name = head_name
    model.lora_trainable = trainable
    return model


def add_lora(model: nn.Module, settings: LoraSettings, masks: dict[str, torch.Tensor] | None = None,
             keep_sparsity: bool = True, head_name: str | None = None):
    """Add LoRA adapters to `model`; only adapters (and the head, if `train_head`) train.

    peft backend: returns a peft model wrapping `model`. weight backend: returns `model` itself,
    its adapted weights parametrized. With `masks` and `keep_sparsity`, each adapter's update is
    masked on the pruned output channels of its layer (and of both projections of a
    MultiheadAttention).
    """
    head_name = classifier_name(model, head_name)  # `head`, `fc`, `classifier.6`, ...: trained, never adapted
    targets = lora_targets(model, settings.types, settings.pattern, head_name)
    if settings.backend == "weight" or settings.attention_in_weight_form:
        return _add_weight_lora(model, settings, targets, masks if keep_sparsity else None, head_name)
    peft = load_peft()
    config = peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                             target_modules=targets, modules_to_save=[head_name] if settings.train_head else None,
                             bias="none")
    peft_model = peft.get_peft_model(model, config)
    if masks and keep_sparsity:
        _mask_lora_updates(peft_model, masks)
    return peft_model


def _mask_lora_updates(peft_model, masks: dict[str, torch.Tensor]) -> None:
    # Adapted layers by their name in the plain model: peft nests some under `base_layer` (the
    # out_proj of a MultiheadAttention lives at `attn.base_layer.out_proj`).
    adapted = {name.replace(".base_layer", ""): module
               for name, module in peft_model.get_base_model().named_modules() if hasattr(module, "lora_B")}
    for key, mask in masks.items():
        module_name = key.rsplit(".", 1)[0] if "." in key else ""
        layer = adapted.get(module_name)
        if layer is None or mask.ndim < 2:
            # pruned but not adapted (its zeros stay since the base weight is frozen), or a bias /
            # norm scale of a dead channel (frozen too; the merge multiplies its mask again)
            continue
        rows = _channel_rows(mask)
        for adapter_b in layer.lora_B.values():
            parametrize.register_parametrization(adapter_b, "weight", _RowMask(rows.to(adapter_b.weight.device)))


def merge_lora(peft_model, masks: dict[str, torch.Tensor] | None = None, keep_sparsity: bool = True) -> nn.Module:
    """Merge the adapters into a plain model; with `keep_sparsity`, pruned weights stay exactly zero."""
    if hasattr(peft_model, "merge_and_unload"):
        bake_masks(peft_model)  # write the row masks into lora_B: plain adapter tensors
        model = peft_model.merge_and_unload()
    else:  # weight backend: W0 + s·B@A becomes the weight
        model = peft_model
        bake_masks(model)
        trainable = model.lora_trainable
        del model.lora_settings, model.lora_trainable, model.lora_head_name
        for name, param in model.named_parameters():
            param.requires_grad_(trainable.get(name, True))
    if masks and keep_sparsity:
        # Exact for structured masks already (the update was masked); for unstructured masks this
        # is where the zeros come back.
        multiply_masks(model, masks)
    return model


@dataclass
class AdapterSnapshot:
    """The trained adapter weights and peft config, taken before the merge discards them."""

    state: dict[str, torch.Tensor]
    config: object

    @classmethod
    def of(cls, peft_model) -> AdapterSnapshot:
        if not hasattr(peft_model, "peft_config"):  # weight backend
            state = {}
            for module_name, module in peft_model.named_modules():
                for param_name, plist in getattr(module, "parametrizations", {}).items():
                    for p in plist:
                        if isinstance(p, LoraWeight):
                            prefix = f"{module_name}.{param_name}" if module_name else param_name
                            state[f"{prefix}.lora_A"] = p.lora_A.detach().cpu().clone()
                            state[f"{prefix}.lora_B"] = p.masked_B().detach().cpu().clone()
            settings = peft_model.lora_settings
            targets = sorted({k.rsplit(".", 1)[0] for k in state})
            if settings.train_head:  # trained too: base weights + adapters alone would not rebuild the model
                head_name = peft_model.lora_head_name
                head = peft_model.get_submodule(head_name)
                state |= {f"{head_name}.{k}": v.detach().cpu().clone() for k, v in head.state_dict().items()}
            return cls(state, WeightLoraConfig(rank=settings.rank, alpha=settings.alpha, targets=targets,
                                               train_head=settings.train_head))
        from peft import get_peft_model_state_dict

        bake_masks(peft_model)  # the row masks written into lora_B: plain adapter tensors
        state = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
        return cls(state, peft_model.peft_config["default"])


@dataclass
class WeightLoraConfig:
    """What a weight-form adapter file holds: `<layer>.<param>.lora_A/.lora_B`, with
    `weight = weight + alpha/rank · lora_B @ lora_A` (reshaped to the weight's shape), and the
    trained head's tensors (`head.*`) when `train_head`."""

    rank: int
    alpha: float
    targets: list[str]
    train_head: bool = True
    backend: str = "weight"

    def save_pretrained(self, out: str) -> None:
        import json

        (Path(out) / "adapter_config.json").write_text(json.dumps(self.__dict__, indent=2) + "\n")


def save_adapter(snapshot: AdapterSnapshot, out: str | Path) -> Path:
    """Save the adapter alone: adapter_model.safetensors + adapter_config.json (peft's format for
    the peft backend; `WeightLoraConfig`'s keys for the weight backend).

    Warns: the original base weights plus this adapter still hold what was to be forgotten.
    """
    from safetensors.torch import save_file

    out = Path(out)
    if not is_main_process():
        barrier()
        return out
    warnings.warn(
        "saving the LoRA adapter alone: the original base weights plus this adapter still contain the "
        "information that was to be forgotten; ship the merged model to honour a deletion request",
        UserWarning, stacklevel=2,
    )
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in snapshot.state.items()}, str(out / "adapter_model.safetensors"))
    snapshot.config.save_pretrained(str(out))
    barrier()
    return out
