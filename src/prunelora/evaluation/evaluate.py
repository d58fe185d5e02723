"""Evaluate a model on its splits: accuracy family, membership inference, representation probe,
relearning time, gap to retrain, cost.

Evaluation never imports methods: it judges any `nn.Module` against any `Splits`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunelora.checkpoint import CheckpointMeta, check_finite, read_meta, state_dict_for_saving
from prunelora.data import Splits, resolve_splits
from prunelora.errors import InvalidInputError
from prunelora.evaluation.attacks import default_attacks, mia_all
from prunelora.evaluation.cache import EvaluationCache
from prunelora.evaluation.chance import attack_at_chance, attacks_at_chance, chance_standard_error
from prunelora.evaluation.compare import compare
from prunelora.evaluation.features import CLASSIFIER_INPUT_KEY, model_pass
from prunelora.evaluation.metrics import GAP_KEYS, per_sample_loss, split_accuracies  # noqa: F401  (GAP_KEYS: re-exported)
from prunelora.evaluation.probe import probe as fit_layer_probe
from prunelora.evaluation.relearn import (
    DEFAULT_RELEARN,
    RelearnConfig,
    heldout_accuracy,
    relearn_steps,
)
from prunelora.evaluation.representation import representation as representation_metrics
from prunelora.evaluation.representation import stage_names
from prunelora.meta_schema import check_reference_metrics
from prunelora.models.checks import (
    check_classifier,
    check_layer_output,
    check_model,
    check_scores,
    model_scores,
)
from prunelora.models.classifier import find_module
from prunelora.pruning import PrunedAttention, pruned_attention_macs_hook, used_parameters
from prunelora.training.distributed import broadcast_from_main, is_main_process
from prunelora.training.loop import resolve_device


@dataclass
class Evaluation:
    """Flat metrics (for tables and CSV), MIA, probe and relearning details, and per-sample losses
    (for histograms). `probe` maps each probed layer to its details (or says why there was none);
    `relearn` holds the relearning details (or `skipped`: why it did not run); `attacks_at_chance`
    names the attacks that cannot tell members from non-members (`prunelora.evaluation.chance`)."""

    metrics: dict[str, float]
    mia: dict[str, dict] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)
    probe: dict[str, dict] = field(default_factory=dict)
    relearn: dict = field(default_factory=dict)
    representation: dict = field(default_factory=dict)

    @property
    def attacks_at_chance(self) -> list[str]:
        """The attacks whose balanced accuracy is within two standard errors of 50, or below."""
        return attacks_at_chance(self.mia)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "mia": self.mia, "attacks_at_chance": self.attacks_at_chance,
                "probe": self.probe, "relearn": self.relearn, "representation": self.representation}


def forgotten_classes(splits: Splits) -> tuple[int, ...]:
    """The classes `splits` forget (class-wise forgetting), else ()."""
    spec = splits.spec
    return tuple(spec.classes) if spec is not None and spec.kind == "class" else ()


def serialized_size_mb(model: nn.Module) -> float:
    """Size of the model's safetensors file, in MiB (serialised in memory, nothing written)."""
    from safetensors.torch import save

    return len(save(state_dict_for_saving(model))) / 2**20


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters and non-zero parameters as the forward pass uses them (`used_parameters`)."""
    tensors = used_parameters(model)
    return {"params": sum(t.numel() for t in tensors), "nonzero_params": sum(int((t != 0).sum()) for t in tensors)}


def count_macs(model: nn.Module, sample: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of one image (`sample[:1]`), counted by
    Torch-Pruning's op counter (convs, linears, norms, attention; element-wise ops are ~free).

    Physically pruned models count fewer; mask-pruned ones count the same (zeros still multiply).
    """
    from torch_pruning.utils import op_counter

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    # The counter matches module types exactly and reads its custom table from a module global:
    # ours is set for this count only, and whatever was there before is put back.
    saved = op_counter.CUSTOM_MODULES_MAPPING
    op_counter.CUSTOM_MODULES_MAPPING = {**saved, PrunedAttention: pruned_attention_macs_hook}
    try:
        macs, _ = op_counter.count_ops_and_params(model, sample[:1].to(device))
    finally:
        op_counter.CUSTOM_MODULES_MAPPING = saved
    return int(macs)


@torch.no_grad()
def inference_throughput(model: nn.Module, sample: torch.Tensor, batch_size: int = 256, repeats: int = 5,
                         device: torch.device | str | None = None) -> float:
    """Images per second in eval mode at `batch_size`, after one warm-up batch (median of repeats)."""
    device = resolve_device(device)
    was_training = model.training
    model = model.to(device).eval()
    batch = sample[:1].repeat(batch_size, *([1] * (sample.ndim - 1))).to(device)
    model(batch)  # warm-up: allocator, kernels, lazy init
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    model.train(was_training)
    return batch_size / float(np.median(times))


SPLIT_NAMES = {"retain": "the retain set", "forget": "the forget set", "test_retain": "the test set",
               "test_forget": "the test set's forgotten classes", "val": "the validation set"}


def measured_throughput(model: nn.Module, sample: torch.Tensor, device: torch.device | str | None = None,
                        cache: EvaluationCache | None = None) -> float:
    """`inference_throughput`, measured once per model structure when a `cache` is given (see
    `prunelora.evaluation.cache`: the speed depends on the structure, not on the weights)."""
    if cache is None:
        return inference_throughput(model, sample, device=device)
    return cache.throughput(model, sample, device, lambda: inference_throughput(model, sample, device=device))


def evaluate(model: nn.Module, splits: Splits | None = None, *, retain=None, forget=None, test=None,
             forget_classes=None, reference: dict[str, float] | None = None,
             attacks: tuple[str, ...] | None = None, mia_seed: int = 0, mia_max_samples: int = 5000,
             throughput: bool = True, macs: bool = True, device: str | None = None,
             keep_losses: int = 2000, probe: bool = True, probe_layer: str | None = None, probe_seed: int = 0,
             relearn: RelearnConfig | None = DEFAULT_RELEARN, relearn_target: float | None = None,
             original_model: nn.Module | None = None, reference_model: nn.Module | None = None,
             probe_stages: bool = True, original: nn.Module | None = None,
             cache: EvaluationCache | None = None) -> Evaluation:
    """All metrics defined in docs/concepts/metrics.md ("Metrics") for `model`, in percent where they are rates.

    MIA: members are D_r, non-members are the test samples of retained classes (same classes as
    the members), balanced and seeded; the attack is applied to D_f. `MIA` is the
    `confidence-svc` efficacy (what "Model Sparsity..." and SalUn report). Each attack's own
    balanced accuracy on held-out members vs non-members is reported as `MIA-<attack>-acc`: near
    50 the attack cannot tell members at all and its efficacy says little. `MIA-<attack>-at-chance`
    is 1 when that accuracy is within two standard errors of 50 or below (`.mia[attack]` holds the
    `standard_error` and `at_chance`; `.attacks_at_chance` lists them; see `prunelora.evaluation.chance`).
    `val` is measured on the validation images of the retained classes when classes are forgotten.
    Representation probe (see `prunelora.evaluation.probe`): `Probe-FA` / `Probe-TA`, a linear
    probe's accuracy on the forgotten / retained test classes from the classifier's input features.
    Representation (see `prunelora.evaluation.representation`): `Probe-Residue` (Probe-FA minus the
    probe's mean per-class accuracy on the retained classes: a repair that sharpens every class
    leaves it unchanged), the probe on every stage's output (`Probe-FA@<stage>`, ...), and linear
    CKA to the original and the retrain (`CKA-original-forget`, `CKA-retrain-retain`, ...).
    Relearning (see `prunelora.evaluation.relearn`): `relearn_steps` to regain
    `relearn.target_fraction` of `relearn_target`, and `relearn_capped` (1 when the cap was hit:
    the steps are a lower bound; the mean over `relearn.repeats` relearn seeds) and
    `relearn_acc@<k>`, the held-out D_f accuracy after k steps for each of `relearn.budgets`. Cost of the model itself: `params`, `nonzero_params`, `macs`
    (multiply-accumulates per image), `throughput` (images per second at batch 256) and `size_mb`.

    Args:
        model: the model to judge (any `nn.Module` classifier).
        splits: the data (see `build_splits`); or give your own datasets as `retain=` etc.
        retain: your D_r (instead of `splits`).
        forget: your D_f.
        test: your test set.
        forget_classes: the forgotten classes, for class-wise forgetting.
        reference: the retrain's metrics; adds `Avg.Gap` over UA, RA, TA and MIA, `Out.Gap` over UA,
            RA and TA, `Probe.Gap` and `relearn_ratio` (where the reference has them).
        attacks: names registered in `prunelora.evaluation.attacks` (None: every attack that needs
            no shadow models; `()`: none).
        mia_seed: seed of the attacks' sampling and fitting.
        mia_max_samples: at most this many members and non-members per attack.
        throughput: measure images per second.
        macs: count multiply-accumulates per image.
        device: `"cpu"`, `"cuda"`, ...; None picks a GPU when there is one.
        keep_losses: per-sample losses kept per split, for histograms.
        probe: run the representation probe (class-wise forgetting only, else NaN).
        probe_layer: a module name (e.g. `layers.1`) whose output is probed too, reported as
            `Probe-FA@<layer>`, `Probe-TA@<layer>` and `Probe.Gap@<layer>`.
        probe_seed: the probe's seed.
        relearn: the relearning protocol; None skips relearning.
        relearn_target: the original model's accuracy on the held-out part of D_f
            (`heldout_accuracy(original, splits)`); None: measured on `original` when given, else
            relearning is skipped (`.relearn["skipped"]` says why).
        original_model: the original model (the older name of `original`).
        reference_model: the retrained model; adds CKA to it (`CKA-retrain-forget`, `-retain`).
        probe_stages: also probe (and compare by CKA) every stage's output.
        original: the original model (the one `model` was unlearned from): the relearning target is
            its accuracy on held-out D_f, and CKA to it is added (`CKA-original-forget`, `-retain`).
        cache: an `EvaluationCache` kept between calls (a bench's): the original's and the retrain's
            test-set features for CKA, and the throughput of each model structure, are then measured
            once and reused (`prunelora.evaluation.cache`); every metric is the same with or without.

    Returns:
        An `Evaluation`: `.metrics` (flat, for tables), `.mia`, `.probe`, `.relearn` and
        `.representation` details (or why each was skipped), and per-sample `.losses`.

    Raises:
        InvalidInputError: an unknown attack, a probe layer the model does not have (or whose output
            is not one feature vector per input), a classifier that does not score the model's
            classes, a model that is not a float32 `nn.Module` with values, data that do not fit
            the model, or a device this machine does not have.

    Example:
        ```python
        reference = prunelora.evaluate(retrained, splits, original=original).metrics
        metrics = prunelora.evaluate(unlearned, splits, reference=reference, original=original).metrics
        print(metrics["UA"], metrics["Avg.Gap"], metrics["Out.Gap"], metrics["relearn_steps"])
        ```
    """
    check_model(model)  # a string, a meta-device or float64 model: one line, before any work
    resolve_device(device)  # an unavailable device too
    if original is not None and original_model is not None and original is not original_model:
        raise InvalidInputError("original= and original_model= name two different models; pass one (original=)")
    original_model = original if original is not None else original_model
    _check_judgeable(model, original_model, reference_model, reference)  # finite weights and reference
    splits = resolve_splits(splits, retain, forget, test, forget_classes,
                            num_classes=model_scores(model, retain, what_data="the retain set").shape[1]
                            if splits is None and retain is not None else None)
    for part, label in SPLIT_NAMES.items():  # data the model cannot take (3 channels for 1) fail here
        if len(getattr(splits, part)):
            check_scores(model, getattr(splits, part), splits.num_classes, what_data=label)
    if probe:  # a model without a classifier, or a wrong layer name, fails before any work
        try:
            check_classifier(model, None, splits.num_classes,
                             advice="the probe would read another layer's input than the classifier's")
            if probe_layer is not None:
                check_layer_output(model, probe_layer, find_module(model, probe_layer),
                                   splits.test_retain if len(splits.test_retain) else splits.retain)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{exc}; or turn the probe off (probe=False, --no-probe)") from None
    # One pass per split; the test set's also captures the probes' and representation's features.
    outputs, captured = model_pass(model, splits, _probed_layers(model, probe_layer, probe_stages) if probe else None,
                                   device=device)
    test_targets = torch.cat([outputs["test_retain"][1], outputs["test_forget"][1]]) if captured is not None else None
    fits: dict = {}  # probe fits shared by the probe and the class residue (one fit per layer)
    m: dict[str, float] = split_accuracies(outputs, forgotten_classes(splits))  # UA, RA, TA, FA, val
    mia: dict[str, dict] = {}
    attacks = default_attacks() if attacks is None else attacks
    if len(splits.forget) and attacks:
        # Fitted once, by the main process, on the outputs gathered from every process.
        results = broadcast_from_main(
            mia_all(outputs["retain"], outputs["test_retain"], outputs["forget"], attacks=attacks,
                    seed=mia_seed, max_samples=mia_max_samples) if is_main_process() else None)
        for name, res in results.items():
            at_chance = attack_at_chance(res.attack_accuracy, res.n_heldout)
            mia[name] = res.to_dict() | {"standard_error": chance_standard_error(res.n_heldout),
                                         "at_chance": at_chance}
            m[f"MIA-{name}"] = res.efficacy
            m[f"MIA-{name}-acc"] = res.attack_accuracy
            m[f"MIA-{name}-at-chance"] = float(at_chance)
        m["MIA"] = m.get("MIA-confidence-svc", float("nan"))
    m.update({k: float(v) for k, v in parameter_counts(model).items()})
    m["sparsity"] = 1.0 - m["nonzero_params"] / m["params"] if m["params"] else 0.0
    if macs and len(splits.retain):
        m["macs"] = float(count_macs(model, splits.retain[0][0].unsqueeze(0)))
    if throughput and len(splits.retain):
        m["throughput"] = broadcast_from_main(
            measured_throughput(model, splits.retain[0][0].unsqueeze(0), device=device, cache=cache)
            if is_main_process() else None)
    m["size_mb"] = serialized_size_mb(model)
    probes: dict[str, dict] = {}
    if probe:
        # Fitted by the main process alone (features of the whole test set), then shared.
        found = broadcast_from_main(_probes(model, splits, probe_layer, probe_seed, device, captured, test_targets,
                                            fits) if is_main_process() else None)
        for layer, result in found.items():
            suffix = "" if layer is None else f"@{layer}"
            m[f"Probe-FA{suffix}"] = result.probe_fa if result is not None else float("nan")
            m[f"Probe-TA{suffix}"] = result.probe_ta if result is not None else float("nan")
            probes[layer or "classifier"] = (result.to_dict() if result is not None else
                                             {"skipped": "no forgotten test class (the probe needs class-wise forgetting)"})
    # Representation metrics (residue, every stage's probe, CKA): the features captured above, and
    # one pass per model compared (or none: the cache's).
    represented: dict = {}
    if probe:
        rep = broadcast_from_main(representation_metrics(
            model, splits, original=original_model, retrain=reference_model, stages=probe_stages, seed=probe_seed,
            device=device, captured=None if captured is None else (captured, test_targets), fits=fits,
            cache=cache) if is_main_process() else None)
        if rep is None:
            m["Probe-Residue"] = float("nan")
            represented = {"skipped": "no forgotten test class (the probe needs class-wise forgetting)"}
        else:
            m.update(rep.metrics())
            represented = rep.to_dict()
    relearned: dict = {}
    if relearn is not None and relearn_target is None and original_model is not None and len(splits.forget) >= 2:
        # the level relearning must regain: the original's accuracy on the held-out part of D_f
        relearn_target = broadcast_from_main(heldout_accuracy(original_model, splits, relearn, device=device)
                                             if is_main_process() else None)
    if relearn is None:
        relearned = {"skipped": "turned off"}
    elif len(splits.forget) < 2:
        relearned = {"skipped": f"D_f has {len(splits.forget)} image(s); relearning needs at least 2"}
    elif relearn_target is None:
        relearned = {"skipped": "the original model's accuracy on D_f is unknown: pass the original "
                                "(evaluate(..., original=model), prunelora eval --original DIR)"}
    else:
        result = broadcast_from_main(relearn_steps(model, splits, relearn_target, relearn, device=device)
                                     if is_main_process() else None)
        m["relearn_steps"], m["relearn_capped"] = float(result.steps), float(result.capped)
        m.update({f"relearn_acc@{budget}": value for budget, value in result.budget_accuracy.items()})
        relearned = result.to_dict() | {"config": relearn.to_dict()}
    if reference is not None:
        m.update(compare(m, reference))
    rng = np.random.default_rng(0)
    losses = {}
    # D_f, non-members of the retained classes (`test`), members (D_r) and non-members of the forgotten
    # classes: a forgotten class's D_f is compared with its own test images, not with other classes'
    # (the first two first, so that their subsamples are those earlier versions drew)
    for part, key in (("forget", "forget"), ("test_retain", "test"), ("retain", "retain"),
                      ("test_forget", "test_forget")):
        values = per_sample_loss(*outputs[part]).numpy() if len(getattr(splits, part)) else np.empty(0)
        if len(values) > keep_losses:
            values = rng.choice(values, keep_losses, replace=False)
        losses[key] = [float(v) for v in values]
    return Evaluation(m, mia, losses, probes, relearned, represented)


def _check_judgeable(model: nn.Module, original_model: nn.Module | None, reference_model: nn.Module | None,
                     reference: Mapping | None) -> None:
    """Refuse, before any work, what would give numbers that look like a success: a model with NaN
    or infinite weights (argmax over NaN logits scores UA 100), and reference metrics that are not
    numbers (a string, ±inf, NaN for UA/RA/TA)."""
    for label, candidate in (("the evaluated model", model), ("original_model", original_model),
                             ("reference_model", reference_model)):
        if isinstance(candidate, nn.Module):
            try:
                check_finite(candidate.state_dict(), label)
            except InvalidInputError as exc:
                raise InvalidInputError(str(exc)) from None
    if reference is not None:
        if not isinstance(reference, Mapping):
            raise InvalidInputError(f"reference must be a mapping of metric names to numbers, not "
                                    f"{type(reference).__name__}")
        check_reference_metrics(reference)


def _probed_layers(model: nn.Module, layer: str | None, stages: bool) -> list[str]:
    """The module outputs the probes and the representation metrics read (the classifier's input
    is always captured besides): every stage when `stages`, and the probe's `layer`."""
    names = stage_names(model) if stages else []
    return names if layer is None or layer in names else [*names, layer]


def _probes(model: nn.Module, splits: Splits, layer: str | None, seed: int, device,
            captured: dict | None = None, targets: torch.Tensor | None = None, fits: dict | None = None) -> dict:
    """None (the classifier's input) and `layer` -> its ProbeResult (None without a forgotten test
    class), from the `captured` test-set features when given (else from a pass of their own)."""
    layers = [None] if layer is None else [None, layer]
    return {name: fit_layer_probe(model, splits, name, seed=seed, device=device, fits=fits,
                                  captured=None if captured is None else
                                  (captured[CLASSIFIER_INPUT_KEY if name is None else name], targets))
            for name in layers}


def _typed(meta: CheckpointMeta | Mapping) -> CheckpointMeta:
    return meta if isinstance(meta, CheckpointMeta) else CheckpointMeta.from_dict(meta)


def check_reference(meta: CheckpointMeta | Mapping, reference_meta: CheckpointMeta | Mapping) -> None:
    """A reference must be a retrain of the same original for the same forget set."""
    meta, reference_meta = _typed(meta), _typed(reference_meta)
    if reference_meta.kind != "retrain":
        raise InvalidInputError(f"--reference is a {reference_meta.kind!r} checkpoint, not a retrain")
    if meta.original_run_id != (reference_meta.original or {}).get("run_id"):
        raise InvalidInputError("--reference is a retrain of another original model (run ids differ)")
    def same_set(spec: dict | None) -> tuple | None:  # where an index file was read from does not matter
        return None if spec is None else tuple(spec.get(k) for k in ("kind", "classes", "fraction", "indices", "seed"))

    if same_set(reference_meta.forget) != same_set(meta.forget):
        raise InvalidInputError("--reference forgot a different set than the evaluated model")


def original_for_relearning(meta: CheckpointMeta, checkpoint: str, original: str | None
                            ) -> tuple[str | None, CheckpointMeta | None, str | None]:
    """Where the original model of `checkpoint` is (relearning's target is its D_f accuracy).

    `(path, its meta.json, None)`: `original` when given (it must be the checkpoint's original),
    the checkpoint itself when it is an original (`meta`), else the path its meta.json records, if
    that still holds it. `(None, None, reason)` when none can be found. Each meta.json is read once.
    """
    wanted = meta.original_run_id
    if original is not None:
        found = read_meta(original)
        if found.run_id != wanted:
            raise InvalidInputError(f"--original {original} is not the original of {checkpoint} (run ids differ)")
        return original, found, None
    if meta.kind == "original" or not meta.original:
        return checkpoint, meta, None
    recorded = meta.original.get("path")
    if not recorded or not (Path(recorded) / "meta.json").is_file():
        return None, None, f"the original model is not at {recorded!r} any more (pass --original DIR)"
    found = read_meta(recorded)
    if found.run_id != wanted:
        return None, None, f"{recorded} now holds another model than the original (pass --original DIR)"
    return recorded, found, None
