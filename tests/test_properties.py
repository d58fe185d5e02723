"""Property tests (hypothesis): statements that hold for every input, checked on generated ones.

Stratified indices (validation split, train subsets, the splits built from them), forget specs,
Avg.Gap, masks surviving a LoRA training step and merge, and sparsity accounting. Examples are
small and few, and derandomized: every run checks the same examples, so the suite repeats.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from prunelora.data import (
    ForgetSpec,
    build_splits,
    load_dataset,
    stratified_indices,
    validation_indices,
)
from prunelora.errors import InvalidInputError
from prunelora.evaluation.metrics import avg_gap


def checked(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------ stratified indices


@st.composite
def labels(draw, max_classes: int = 6, max_len: int = 300) -> tuple[torch.Tensor, int]:
    """Integer labels in [0, C) (a class may be absent) and C."""
    num_classes = draw(st.integers(2, max_classes))
    values = draw(st.lists(st.integers(0, num_classes - 1), min_size=1, max_size=max_len))
    return torch.tensor(values, dtype=torch.long), num_classes


@checked(60)
@given(labels(), st.floats(0.0, 0.95), st.integers(0, 2**31 - 1))
def test_validation_indices_are_stratified_distinct_and_seeded(drawn, fraction, seed):
    targets, num_classes = drawn
    val = validation_indices(targets, num_classes, fraction, seed)
    assert val.dtype == torch.long
    assert torch.all(val[1:] > val[:-1])  # sorted and distinct
    assert len(val) == 0 or (0 <= int(val.min()) and int(val.max()) < len(targets))
    for c in range(num_classes):
        n_c = int((targets == c).sum())
        taken = int((targets[val] == c).sum())
        assert abs(taken - n_c * fraction) <= 0.5 + 1e-9, (c, n_c, taken)  # each class in its share
    assert torch.equal(val, validation_indices(targets, num_classes, fraction, seed))  # same seed, same split


@checked(60)
@given(labels(), st.data())
def test_train_subsets_have_the_size_asked_and_each_class_within_one_of_its_share(drawn, data):
    targets, _ = drawn
    present = len(torch.unique(targets))
    size = data.draw(st.integers(present, len(targets)), label="size")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    idx = stratified_indices(targets, size, seed)
    assert len(idx) == size
    assert torch.all(idx[1:] > idx[:-1]) and 0 <= int(idx.min()) and int(idx.max()) < len(targets)
    for c in torch.unique(targets).tolist():
        share = size * int((targets == c).sum()) / len(targets)
        assert abs(int((targets[idx] == c).sum()) - share) < 1, c
    assert torch.equal(idx, stratified_indices(targets, size, seed))


@pytest.fixture(scope="module")
def digits_bundle():
    return load_dataset("digits")


forget_specs = st.one_of(
    st.lists(st.integers(0, 9), min_size=1, max_size=9, unique=True).map(ForgetSpec.from_classes),
    st.builds(lambda f, s: ForgetSpec(kind="fraction", fraction=f, seed=s),
              st.floats(0.01, 0.9), st.integers(0, 2**31 - 1)),
)


@checked(25)
@given(spec=forget_specs, val_fraction=st.floats(0.0, 0.5), seed=st.integers(0, 2**31 - 1))
def test_splits_partition_the_training_set_and_never_forget_validation_records(digits_bundle, spec,
                                                                                val_fraction, seed):
    splits = build_splits(digits_bundle, spec, val_fraction=val_fraction, seed=seed)
    n = len(digits_bundle.train)
    parts = [set(splits.val_indices.tolist()), set(splits.forget_indices.tolist()),
             set(splits.retain_indices.tolist())]
    assert sum(map(len, parts)) == n and set().union(*parts) == set(range(n))  # disjoint, covering
    targets = digits_bundle.train.targets
    # the validation split is the original's, whatever is forgotten
    assert torch.equal(splits.val_indices, validation_indices(targets, 10, val_fraction, seed))
    trained = sorted(set(range(n)) - parts[0])
    if spec.kind == "class":
        assert parts[1] == {i for i in trained if int(targets[i]) in spec.classes}
    else:
        assert len(parts[1]) == round(spec.fraction * len(trained))
    again = build_splits(digits_bundle, spec, val_fraction=val_fraction, seed=seed)
    assert torch.equal(again.forget_indices, splits.forget_indices)


# ------------------------------------------------------------------------------ forget specs


@checked(100)
@given(st.lists(st.integers(-5, 10**6), min_size=1, max_size=20))
def test_forget_class_text_round_trips(classes):
    spec = ForgetSpec.from_classes(",".join(map(str, classes)))
    assert spec.kind == "class" and spec.classes == tuple(sorted(set(classes)))
    assert ForgetSpec.from_classes(",".join(map(str, spec.classes))) == spec  # parse -> text -> parse
    assert ForgetSpec.from_classes(list(spec.classes)) == spec


@checked(100)
@given(st.one_of(
    forget_specs,
    st.builds(lambda idx, src: ForgetSpec(kind="indices", indices=tuple(sorted(set(idx))), source=src),
              st.lists(st.integers(0, 10**6), max_size=20), st.text(max_size=20)),
))
def test_forget_specs_round_trip_through_their_json_record(spec):
    assert ForgetSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@checked(60)
@given(st.lists(st.integers(0, 10**9), min_size=0, max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_forget_index_files_round_trip(indices, newline):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forget.txt"
        path.write_text("# a deletion request\n" + newline.join(f"{i}  # record" for i in indices) + newline)
        spec = ForgetSpec.from_index_file(path)
        assert spec.indices == tuple(sorted(set(indices)))
        again = Path(tmp) / "again.txt"
        again.write_text("\n".join(map(str, spec.indices)))
        assert ForgetSpec.from_index_file(again).indices == spec.indices


@checked(150)
@given(st.text(max_size=30))
def test_any_forget_class_text_parses_or_is_refused_with_one_line(text):
    try:
        spec = ForgetSpec.from_classes(text)
    except InvalidInputError as exc:
        message = str(exc)
        assert message and "\n" not in message
        return
    assert spec.kind == "class" and spec.classes and all(isinstance(c, int) for c in spec.classes)


@checked(100)
@given(st.binary(max_size=60))
def test_any_forget_index_file_parses_or_is_refused_with_one_line(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forget.txt"
        path.write_bytes(content)
        try:
            spec = ForgetSpec.from_index_file(path)
        except InvalidInputError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        assert all(isinstance(i, int) for i in spec.indices)


@checked(60)
@given(st.one_of(st.floats(allow_nan=True).filter(lambda f: not 0.0 < f < 1.0), st.just(float("nan"))))
def test_a_forget_fraction_outside_the_open_unit_interval_is_refused(fraction):
    with pytest.raises(InvalidInputError, match="outside"):
        ForgetSpec(kind="fraction", fraction=fraction)


# ------------------------------------------------------------------------------ Avg.Gap

KEYS = ("UA", "RA", "TA", "MIA")
# Metric values are rates: 100 * k / n for counts k <= n.
rates = st.builds(lambda k, n: 100.0 * min(k, n) / n, st.integers(0, 10_000), st.integers(1, 10_000))
metric_sets = st.fixed_dictionaries({k: rates for k in KEYS})


@checked(200)
@given(metric_sets, metric_sets)
def test_avg_gap_is_symmetric_bounded_and_zero_only_for_equal_metrics(a, b):
    gap = avg_gap(a, b)
    assert gap == avg_gap(b, a)  # symmetric, exactly
    diffs = [abs(a[k] - b[k]) for k in KEYS]
    assert min(diffs) <= gap <= max(diffs) <= 100.0  # a mean of the gaps, within the rates' range
    assert gap == pytest.approx(sum(diffs) / len(diffs), abs=1e-12)
    assert (gap == 0.0) == all(a[k] == b[k] for k in KEYS)
    assert avg_gap(a, a) == 0.0


@checked(50)
@given(metric_sets, metric_sets, st.sampled_from(KEYS))
def test_avg_gap_of_a_missing_measurement_is_nan(a, b, key):
    assert math.isnan(avg_gap({**a, key: float("nan")}, b))
    assert math.isnan(avg_gap(a, {**b, key: float("nan")}))


# ------------------------------------------------------------------------------ masks through LoRA


def tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 6),
                         nn.ReLU(), nn.Linear(6, 3))  # the last Linear is the classifier head


def random_masks(model: nn.Module, seed: int, structured: bool, keep: float) -> dict[str, torch.Tensor]:
    """A random mask on the conv and the hidden linear: whole output rows, or single weights."""
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    for key in ("0.weight", "3.weight"):
        shape = model.get_parameter(key).shape
        draw = torch.rand(shape[0] if structured else shape, generator=gen) < keep
        mask = draw.view(-1, *[1] * (len(shape) - 1)).expand(shape) if structured else draw
        masks[key] = mask.float().contiguous()
    return masks


@checked(12)
@given(seed=st.integers(0, 10_000), structured=st.booleans(), keep=st.floats(0.2, 0.8),
       backend=st.sampled_from(["peft", "weight"]))
def test_masked_weights_stay_exactly_zero_through_a_lora_step_and_the_merge(seed, structured, keep, backend):
    from prunelora.adapters.lora import LoraSettings, add_lora, merge_lora
    from prunelora.pruning import multiply_masks

    model = tiny_model(seed)
    masks = random_masks(model, seed, structured, keep)
    assume(all(0 < int(m.sum()) < m.numel() for m in masks.values()))  # something pruned, something kept
    multiply_masks(model, masks)  # pruned as PruneLoRA does: zeros baked in, then the adapters
    before = {k: model.get_parameter(k).detach().clone() for k in masks}
    adapted = add_lora(model, LoraSettings(rank=2, alpha=4, dropout=0.0, types=("conv", "linear"), backend=backend),
                       masks=masks, keep_sparsity=True)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 2, 4, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen)
    optimizer = torch.optim.SGD([p for p in adapted.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):  # after the first step B is non-zero, so the second moves the adapted weights
        optimizer.zero_grad()
        nn.functional.cross_entropy(adapted(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        trained_out = adapted(x)
    merged = merge_lora(adapted, masks=masks, keep_sparsity=True)
    for key, mask in masks.items():
        weight = merged.get_parameter(key).detach()
        assert torch.all(weight[mask == 0] == 0), key  # exactly zero, not small
        assert not torch.equal(weight, before[key]), key  # the step did change the kept weights
    if structured or backend == "weight":
        # the update was masked while training, so the merge changed no function: no refill was cut
        with torch.no_grad():
            assert torch.allclose(merged(x), trained_out, atol=1e-5)


# ------------------------------------------------------------------------------ sparsity accounting


@checked(30)
@given(seed=st.integers(0, 10_000), structured=st.booleans(), keep=st.floats(0.0, 1.0), baked=st.booleans())
def test_reported_sparsity_equals_the_counted_zeros(seed, structured, keep, baked):
    from prunelora.evaluation.evaluate import parameter_counts
    from prunelora.pruning import apply_masks, bake_masks, select_params, sparsity_report

    model = tiny_model(seed)
    masks = random_masks(model, seed, structured, keep)
    # what the model computes with, worked out by hand: each weight times its mask
    weights = {name: p.detach() * masks.get(name, 1.0) for name, p in model.named_parameters()}
    params = [p for p in select_params(model, ("conv", "linear")) if p.key in masks]
    apply_masks(params, masks)  # kept attached (as while training) unless baked
    if baked:
        bake_masks(model)
    report = sparsity_report(model, masks)
    counts = parameter_counts(model)  # what evaluate() reports as params / nonzero_params / sparsity

    assert counts == {"params": sum(w.numel() for w in weights.values()),
                      "nonzero_params": sum(int((w != 0).sum()) for w in weights.values())}
    weights = {name: w for name, w in weights.items() if w.ndim > 1}  # the report counts weights, not biases
    zeros = {name: int((w == 0).sum()) for name, w in weights.items()}
    assert report["overall"] == sum(zeros.values()) / sum(w.numel() for w in weights.values())
    for key in masks:
        w = weights[key]
        layer = report["layers"][key]
        assert layer["params"] == w.numel()
        assert layer["zero_fraction"] == pytest.approx(zeros[key] / w.numel(), abs=1e-6)
        dead_rows = int((w.flatten(1) == 0).all(dim=1).sum())
        assert layer["zero_channels"] == pytest.approx(dead_rows / w.shape[0], abs=1e-6)
    pruned = sum(weights[k].numel() for k in masks)
    assert report["pruned_layers"] == pytest.approx(sum(zeros[k] for k in masks) / pruned, abs=1e-6)


def test_tied_weights_count_once():
    """Two layers sharing one weight: the model has its parameters once, and so do the counts."""
    from prunelora.evaluation.evaluate import parameter_counts

    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight
    model = nn.Sequential(first, second)
    expected = sum(p.numel() for p in model.parameters())  # 16 + 4 + 4: the shared weight once
    assert parameter_counts(model)["params"] == expected == 24
