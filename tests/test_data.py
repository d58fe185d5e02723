"""Dataset registry, forget specifications, the split builder and augmentation."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelora.data import (
    NORMALIZATION,
    ForgetSpec,
    ImageDataset,
    build_splits,
    list_datasets,
    load_dataset,
    make_loader,
    register_dataset,
    stratified_indices,
    stratified_subset,
)
from prunelora.data.images import random_crop_flip
from prunelora.errors import InvalidInputError, MissingFileError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DIGITS_TRAIN, DIGITS_TEST = 1347, 450


# --------------------------------------------------------------------------- datasets


def test_digits_is_offline_and_split_75_25(digits):
    assert digits.name == "digits"
    assert len(digits.train) == DIGITS_TRAIN
    assert len(digits.test) == DIGITS_TEST
    assert len(digits.train) + len(digits.test) == 1797
    assert digits.num_classes == 10
    assert digits.classes == [str(i) for i in range(10)]
    assert digits.in_channels == 1 and digits.image_size == 8
    assert digits.train.images.dtype == torch.uint8
    assert digits.train.images.shape == (DIGITS_TRAIN, 1, 8, 8)
    assert int(digits.train.images.max()) == 255  # 0..16 scaled to the uint8 range
    assert (digits.mean, digits.std) == NORMALIZATION["digits"]


def test_digits_split_is_stratified(digits):
    train_counts = torch.bincount(digits.train.targets, minlength=10)
    test_counts = torch.bincount(digits.test.targets, minlength=10)
    assert (test_counts > 0).all()
    totals = train_counts + test_counts
    # Stratified: every class puts a quarter of its images (to within one) in the test set.
    assert ((test_counts.float() - 0.25 * totals.float()).abs() <= 1.0).all()


def test_digits_is_reproducible(digits):
    again = load_dataset("digits")
    assert torch.equal(again.train.images, digits.train.images)
    assert torch.equal(again.test.targets, digits.test.targets)


def test_getitems_returns_a_normalised_batch(digits):
    x, y = digits.train.__getitems__([0, 5, 7])
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32
    assert torch.equal(y, digits.train.targets[[0, 5, 7]])
    mean, std = NORMALIZATION["digits"]
    pixels = (x * std[0] + mean[0]) * 255.0
    assert torch.allclose(pixels, digits.train.images[[0, 5, 7]].float(), atol=1e-3)
    single_x, single_y = digits.train[5]
    assert torch.equal(single_x, x[1]) and single_y == y[1]


def test_describe_records_normalisation(digits):
    d = digits.describe()
    assert d["normalization"] == {"mean": [0.3064], "std": [0.3805]}
    assert d["train_size"] == DIGITS_TRAIN and d["test_size"] == DIGITS_TEST


@pytest.mark.skipif(not FASHION_DIR.is_dir(),
                    reason=f"Fashion-MNIST files absent ({FASHION_DIR}; apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_from_debian_folder():
    bundle = load_dataset("fashion-mnist")
    assert len(bundle.train) == 60_000 and len(bundle.test) == 10_000
    assert bundle.train.images.shape[1:] == (1, 28, 28)
    assert bundle.in_channels == 1 and bundle.image_size == 28
    assert bundle.num_classes == 10
    assert set(bundle.train.targets.unique().tolist()) == set(range(10))
    assert bundle.extra["source"] == str(FASHION_DIR)


def test_fashion_mnist_missing_files_names_the_folder(tmp_path):
    with pytest.raises(MissingFileError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "\n" not in str(info.value)


def test_mnist_without_files_or_download_is_missing():
    with pytest.raises(MissingFileError, match="data-dir"):
        load_dataset("mnist")


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_idx_dir(tmp_path: Path) -> Path:
    """A fake MNIST in idx format: 20 train and 10 test images of 28x28."""
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(20) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    return tmp_path


def test_idx_files_from_data_dir(tiny_idx_dir):
    bundle = load_dataset("mnist", data_dir=tiny_idx_dir)
    assert len(bundle.train) == 20 and len(bundle.test) == 10
    assert bundle.train.images.shape == (20, 1, 28, 28)
    assert bundle.train.targets.tolist() == [i % 10 for i in range(20)]


def test_truncated_idx_file_is_invalid_input(tiny_idx_dir):
    path = tiny_idx_dir / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(InvalidInputError, match="truncated"):
        load_dataset("mnist", data_dir=tiny_idx_dir)


@pytest.mark.parametrize("content", [b"\x00\x00", b"\x00\x00\x08\x03" + b"\xff" * 8],
                         ids=["shorter-than-magic", "dims-past-end"])
def test_corrupt_idx_header_is_invalid_input(tiny_idx_dir, content):
    (tiny_idx_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(content))
    with pytest.raises(InvalidInputError):
        load_dataset("mnist", data_dir=tiny_idx_dir)


def test_idx_dir_missing_one_file(tiny_idx_dir):
    (tiny_idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MissingFileError, match=str(tiny_idx_dir)):
        load_dataset("mnist", data_dir=tiny_idx_dir)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """2 classes x 3 PNGs of different sizes and modes."""
    from PIL import Image

    root = tmp_path / "pets"
    rng = np.random.default_rng(0)
    for cls, mode in (("cat", "RGB"), ("dog", "L")):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            shape = (10 + i, 12) if mode == "L" else (10 + i, 12, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / cls / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_imagefolder(image_folder):
    bundle = load_dataset(f"imagefolder:{image_folder}")
    assert bundle.classes == ["cat", "dog"]
    assert bundle.name == f"imagefolder:{image_folder}"
    assert len(bundle.train) + len(bundle.test) == 6
    assert len(bundle.test) == 2
    assert sorted(bundle.test.targets.tolist()) == [0, 1]  # stratified: one of each class
    assert bundle.train.images.shape[1:] == (3, 32, 32)
    assert bundle.in_channels == 3 and bundle.image_size == 32


def test_imagefolder_missing_path(tmp_path):
    with pytest.raises(MissingFileError, match="nowhere"):
        load_dataset(f"imagefolder:{tmp_path / 'nowhere'}")


def test_imagefolder_needs_two_classes(image_folder):
    import shutil

    shutil.rmtree(image_folder / "dog")
    with pytest.raises(InvalidInputError, match="1 class"):
        load_dataset(f"imagefolder:{image_folder}")


def test_unknown_dataset_lists_accepted_names():
    with pytest.raises(InvalidInputError) as info:
        load_dataset("cifar11")
    message = str(info.value)
    assert "'cifar11'" in message
    for name in ("digits", "fashion-mnist", "mnist", "cifar10", "imagefolder:PATH"):
        assert name in message


def test_list_datasets_says_how_each_is_reached():
    listed = list_datasets()
    assert {"digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "imagefolder:PATH"} <= set(listed)
    assert all(isinstance(v, str) and v for v in listed.values())


# --------------------------------------------------------------------------- forget specs


def test_from_classes_parses_sorts_and_dedups():
    assert ForgetSpec.from_classes("5,3,3").classes == (3, 5)
    assert ForgetSpec.from_classes(3).classes == (3,)
    assert ForgetSpec.from_classes([7, 2]).classes == (2, 7)
    with pytest.raises(InvalidInputError, match="'three'"):
        ForgetSpec.from_classes("three")
    with pytest.raises(InvalidInputError):
        ForgetSpec.from_classes("")


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.1])
def test_fraction_outside_open_unit_interval(fraction):
    with pytest.raises(InvalidInputError, match=str(fraction)):
        ForgetSpec(kind="fraction", fraction=fraction)


def test_unknown_forget_kind():
    with pytest.raises(InvalidInputError, match="'everything'"):
        ForgetSpec(kind="everything")


def test_index_file_parsing(tmp_path):
    path = tmp_path / "delete.txt"
    path.write_text("# deletion requests\n17\n\n5\n5   # asked twice\n100\n")
    spec = ForgetSpec.from_index_file(path)
    assert spec.kind == "indices"
    assert spec.indices == (5, 17, 100)
    assert spec.source == str(path)


def test_index_file_with_non_integer_names_line(tmp_path):
    path = tmp_path / "delete.txt"
    path.write_text("1\n2\nthree\n")
    with pytest.raises(InvalidInputError, match=r":3: 'three'"):
        ForgetSpec.from_index_file(path)


def test_missing_index_file(tmp_path):
    with pytest.raises(MissingFileError, match="absent.txt"):
        ForgetSpec.from_index_file(tmp_path / "absent.txt")


@pytest.mark.parametrize("spec", [
    ForgetSpec.from_classes("3,5"),
    ForgetSpec(kind="fraction", fraction=0.25, seed=4),
    ForgetSpec(kind="indices", indices=(1, 2, 3), source="x.txt"),
])
def test_spec_dict_round_trip(spec):
    assert ForgetSpec.from_dict(spec.to_dict()) == spec


# --------------------------------------------------------------------------- splits


@pytest.fixture
def index_spec(tmp_path: Path, digits) -> ForgetSpec:
    """A deletion request naming five records the original trained on (none in validation)."""
    val = set(build_splits(digits, None).val_indices.tolist())
    trained = [i for i in range(DIGITS_TRAIN) if i not in val]
    path = tmp_path / "forget.txt"
    path.write_text("\n".join(str(i) for i in (trained[0], trained[3], trained[10], trained[500], trained[-1])) + "\n")
    return ForgetSpec.from_index_file(path)


def _spec(kind: str, index_spec: ForgetSpec) -> ForgetSpec:
    return {
        "class": ForgetSpec.from_classes("3"),
        "classes": ForgetSpec.from_classes("3,5"),
        "fraction": ForgetSpec(kind="fraction", fraction=0.1, seed=1),
        "indices": index_spec,
    }[kind]


@pytest.mark.parametrize("kind", ["class", "classes", "fraction", "indices"])
def test_splits_partition_train(digits, index_spec, kind):
    spec = _spec(kind, index_spec)
    splits = build_splits(digits, spec)
    base = build_splits(digits, None)  # the validation split before any record is forgotten
    forget = set(splits.forget_indices.tolist())
    retain = set(splits.retain_indices.tolist())
    val = set(splits.val_indices.tolist())

    assert forget and retain and val
    assert not forget & retain and not forget & val and not retain & val
    assert forget | retain | val == set(range(DIGITS_TRAIN))
    # Validation is the original's, the same before and after unlearning; D_f is drawn from the
    # records the original trained on (train minus val) only.
    assert val == set(base.val_indices.tolist())
    trained = set(range(DIGITS_TRAIN)) - val
    assert forget <= trained

    targets = digits.train.targets
    if spec.kind == "class":
        expected = set(torch.isin(targets, torch.tensor(spec.classes)).nonzero().flatten().tolist()) - val
        assert forget == expected
        # |D_f| is the class's count among the original's training records, not in the whole train set
        trained_targets = targets[sorted(trained)]
        assert len(forget) == int(torch.isin(trained_targets, torch.tensor(spec.classes)).sum())
    elif spec.kind == "fraction":
        assert len(forget) == round(0.1 * len(trained)) == 121
    else:
        assert forget == set(spec.indices)

    assert splits.sizes() == {"forget": len(forget), "retain": len(retain), "val": len(val),
                              "test_retain": len(splits.test_retain), "test_forget": len(splits.test_forget)}
    # The datasets hold exactly the rows their indices name.
    assert torch.equal(splits.forget.targets, targets[splits.forget_indices])
    assert torch.equal(splits.retain.images, digits.train.images[splits.retain_indices])
    assert torch.equal(splits.val.targets, targets[splits.val_indices])
    assert splits.num_classes == 10 and splits.spec == spec


@pytest.mark.parametrize("kind", ["class", "classes", "fraction", "indices"])
def test_test_forget_only_for_classwise(digits, index_spec, kind):
    spec = _spec(kind, index_spec)
    splits = build_splits(digits, spec)
    test_targets = digits.test.targets
    if spec.kind == "class":
        forgotten = set(spec.classes)
        assert len(splits.test_forget) > 0
        assert set(splits.test_forget.targets.tolist()) == forgotten
        assert len(splits.test_forget) == int(torch.isin(test_targets, torch.tensor(spec.classes)).sum())
        assert not forgotten & set(splits.test_retain.targets.tolist())
        assert set(splits.forget.targets.tolist()) == forgotten
        assert not forgotten & set(splits.retain.targets.tolist())
    else:
        assert len(splits.test_forget) == 0
        assert len(splits.test_retain) == DIGITS_TEST
    assert len(splits.test_forget) + len(splits.test_retain) == DIGITS_TEST


def test_validation_split_is_stratified_and_seeded(digits):
    a, b = build_splits(digits, None, seed=0), build_splits(digits, None, seed=0)
    other = build_splits(digits, None, seed=1)
    assert torch.equal(a.val_indices, b.val_indices)
    assert not torch.equal(a.val_indices, other.val_indices)
    counts = torch.bincount(digits.train.targets, minlength=10)
    val_counts = torch.bincount(a.val.targets, minlength=10)
    assert torch.equal(val_counts, (counts.double() * 0.1).round().long())
    assert len(a.forget) == 0 and a.spec is None
    assert len(a.retain) + len(a.val) == DIGITS_TRAIN


def test_fraction_is_seeded(digits):
    spec = ForgetSpec(kind="fraction", fraction=0.1, seed=1)
    same = build_splits(digits, spec).forget_indices
    assert torch.equal(same, build_splits(digits, spec).forget_indices)
    other = build_splits(digits, ForgetSpec(kind="fraction", fraction=0.1, seed=2)).forget_indices
    assert not torch.equal(same, other)


# --------------------------------------------------------------------------- stratified train subsets


@pytest.mark.parametrize("size", [10, 137, 500, DIGITS_TRAIN])
def test_stratified_subset_is_proportional_to_the_classes(digits, size):
    idx = stratified_indices(digits.train.targets, size, seed=0)
    assert len(idx) == size == len(set(idx.tolist()))
    assert torch.equal(idx, idx.sort().values)  # sorted: the subset keeps the dataset's order
    counts = torch.bincount(digits.train.targets[idx], minlength=10).double()
    proportional = torch.bincount(digits.train.targets, minlength=10).double() * size / DIGITS_TRAIN
    assert ((counts - proportional).abs() < 1.0).all(), (counts, proportional)
    subset = stratified_subset(digits.train, size, seed=0)
    assert torch.equal(subset.images, digits.train.images[idx])
    assert torch.equal(subset.targets, digits.train.targets[idx])


def test_stratified_subset_of_a_balanced_set_is_equal_per_class():
    targets = torch.arange(10).repeat_interleave(600)  # 10 classes x 600, like Fashion-MNIST / 10
    counts = torch.bincount(targets[stratified_indices(targets, 2000, seed=3)], minlength=10)
    assert counts.tolist() == [200] * 10
    # 2005 = 10 x 200 + 5: the five extra images go to five classes, one each
    counts = torch.bincount(targets[stratified_indices(targets, 2005, seed=3)], minlength=10)
    assert sorted(counts.tolist()) == [200] * 5 + [201] * 5


def test_stratified_subset_depends_on_the_seed_alone(digits):
    first = stratified_indices(digits.train.targets, 300, seed=4)
    assert torch.equal(first, stratified_indices(digits.train.targets, 300, seed=4))
    other = stratified_indices(digits.train.targets, 300, seed=5)
    assert not torch.equal(first, other)
    # another seed picks other images, but as many of each class
    assert torch.equal(torch.bincount(digits.train.targets[first]), torch.bincount(digits.train.targets[other]))
    a, b = stratified_subset(digits.train, 300, seed=4), stratified_subset(digits.train, 300, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("size", [0, 9, DIGITS_TRAIN + 1, 2.5, "100", True])
def test_stratified_subset_refuses_a_bad_size(digits, size):
    with pytest.raises(InvalidInputError) as info:
        stratified_subset(digits.train, size, seed=0)
    message = str(info.value)
    assert "\n" not in message
    assert repr(size) in message and f"[10, {DIGITS_TRAIN}]" in message


def test_stratified_subset_refuses_a_bad_seed(digits):
    with pytest.raises(InvalidInputError, match="seed 'x'"):
        stratified_subset(digits.train, 100, seed="x")


def test_forget_class_outside_range(digits):
    with pytest.raises(InvalidInputError, match=r"forget class 10 is outside \[0, 10\)"):
        build_splits(digits, ForgetSpec.from_classes("3,10"))


def test_forget_everything_is_refused(digits):
    with pytest.raises(InvalidInputError, match="whole training set"):
        build_splits(digits, ForgetSpec.from_classes(list(range(10))))


def test_forget_index_in_validation_is_refused(digits):
    held_out = int(build_splits(digits, None).val_indices[0])
    with pytest.raises(InvalidInputError, match=rf"forget index {held_out} is in the original's validation split"):
        build_splits(digits, ForgetSpec(kind="indices", indices=(held_out,)))


def test_recorded_validation_indices_are_used(digits):
    """A checkpoint's recorded validation split wins over recomputing it: the same records stay held out."""
    recorded = list(range(0, DIGITS_TRAIN, 7))  # not what the seeded stratified draw gives
    splits = build_splits(digits, ForgetSpec.from_classes(3), val_indices=recorded)
    assert splits.val_indices.tolist() == recorded
    assert not set(splits.forget_indices.tolist()) & set(recorded)
    for bad in ([0, 0], [DIGITS_TRAIN], [-1]):
        with pytest.raises(InvalidInputError, match="recorded validation indices"):
            build_splits(digits, None, val_indices=bad)


def test_forget_index_out_of_range(digits):
    with pytest.raises(InvalidInputError, match="1347"):
        build_splits(digits, ForgetSpec(kind="indices", indices=(0, 1347)))


def test_empty_forget_set_is_refused(digits):
    with pytest.raises(InvalidInputError, match="empty"):
        build_splits(digits, ForgetSpec(kind="indices", indices=()))


@pytest.mark.parametrize("val_fraction", [-0.1, 1.0])
def test_val_fraction_outside_range(digits, val_fraction):
    with pytest.raises(InvalidInputError, match=str(val_fraction)):
        build_splits(digits, None, val_fraction=val_fraction)


def test_forget_val_and_test_never_augment(digits):
    augmented = load_dataset("digits")
    augmented.train.augment = True  # what a bundle loaded with augmentation looks like
    splits = build_splits(augmented, ForgetSpec.from_classes(3))
    assert splits.retain.augment
    assert not splits.forget.augment and not splits.val.augment
    assert not splits.test_retain.augment and not splits.test_forget.augment
    assert not digits.train.augment  # the shared bundle is untouched


def test_make_loader_order_depends_on_seed_only(digits):
    def order(seed: int) -> torch.Tensor:
        return torch.cat([y for _, y in make_loader(digits.train, batch_size=100, shuffle=True, seed=seed)])

    torch.manual_seed(123)
    first = order(5)
    torch.manual_seed(456)  # the global RNG must not matter
    assert torch.equal(first, order(5))
    assert not torch.equal(first, order(6))
    batches = list(make_loader(digits.train, batch_size=100))
    assert len(batches) == 14 and batches[0][0].shape == (100, 1, 8, 8)
    assert torch.equal(torch.cat([y for _, y in batches]), digits.train.targets)


# --------------------------------------------------------------------------- augmentation


def test_random_crop_flip_keeps_shape_and_is_seeded():
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    a = random_crop_flip(x)
    torch.manual_seed(7)
    b = random_crop_flip(x)
    torch.manual_seed(8)
    c = random_crop_flip(x)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_random_crop_flip_without_padding_only_flips():
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    out = random_crop_flip(x, padding=0)
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


def test_augmented_dataset_changes_batches_but_not_labels():
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(8)
    plain = ImageDataset(images, targets, (0.5,) * 3, (0.5,) * 3)
    augmented = ImageDataset(images, targets, (0.5,) * 3, (0.5,) * 3, augment=True)
    torch.manual_seed(0)
    xa, ya = augmented.__getitems__(list(range(8)))
    xp, yp = plain.__getitems__(list(range(8)))
    assert xa.shape == xp.shape
    assert torch.equal(ya, yp)
    assert not torch.equal(xa, xp)


def test_image_dataset_rejects_bad_tensors():
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2), (0.5,), (0.5,))
    with pytest.raises(ValueError, match="targets"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3), (0.5,), (0.5,))


def test_register_dataset_refuses_a_name_already_registered(monkeypatch):
    from prunelora.data import datasets

    monkeypatch.setattr(datasets, "_DATASETS", dict(datasets._DATASETS))  # registrations stay in this test
    digits_loader = datasets._DATASETS["digits"]
    with pytest.raises(InvalidInputError, match="dataset 'digits' is already registered"):
        register_dataset("digits", "elsewhere")(lambda data_dir=None, download=False, augment=False: None)
    assert datasets._DATASETS["digits"] == digits_loader  # the first loader stands
    register_dataset("my-digits", "a test")(digits_loader[0])
    assert list_datasets()["my-digits"] == "a test" and load_dataset("my-digits").name == "digits"
    with pytest.raises(InvalidInputError, match="'my-digits' is already registered"):
        register_dataset("my-digits", "twice")(digits_loader[0])
