"""Forget specifications and the one split builder (D_f, D_r, val, test-retain, test-forget)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from prunelora.data.datasets import DatasetBundle, ImageDataset
from prunelora.errors import InvalidInputError, MissingFileError


@dataclass(frozen=True)
class ForgetSpec:
    """What to forget: whole classes, a seeded random fraction of train, or explicit train indices."""

    kind: str  # "class" | "fraction" | "indices"
    classes: tuple[int, ...] = ()
    fraction: float = 0.0
    indices: tuple[int, ...] = ()
    seed: int = 0
    source: str = ""  # the index file a deletion request came from, for the record

    def __post_init__(self) -> None:
        if self.kind not in ("class", "fraction", "indices"):
            raise InvalidInputError(f"forget kind {self.kind!r} is not one of: class, fraction, indices")
        if self.kind == "fraction" and not 0.0 < self.fraction < 1.0:
            raise InvalidInputError(f"--forget-fraction {self.fraction} is outside (0, 1)")
        if self.kind == "class" and not self.classes:
            raise InvalidInputError("--forget-class needs at least one class index")

    @classmethod
    def from_classes(cls, classes: int | str | list[int] | tuple[int, ...]) -> ForgetSpec:
        """`3`, `"3,5"` or `[3, 5]`."""
        if isinstance(classes, str):
            try:
                parsed = tuple(int(c) for c in classes.split(",") if c.strip())
            except ValueError:
                raise InvalidInputError(
                    f"--forget-class {classes!r} is not a class index or comma-separated list (e.g. 3 or 3,5)"
                ) from None
        elif isinstance(classes, int):
            parsed = (classes,)
        else:
            parsed = tuple(int(c) for c in classes)
        return cls(kind="class", classes=tuple(sorted(set(parsed))))

    @classmethod
    def from_index_file(cls, path: str | os.PathLike) -> ForgetSpec:
        """One training index per line; blank lines and `#` comments are ignored."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"forget index file {str(path)!r} does not exist")
        try:
            content = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"forget index file {str(path)!r} is not UTF-8 text (byte {exc.start})") from None
        indices = []
        for lineno, line in enumerate(content.splitlines(), 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                indices.append(int(text))
            except ValueError:
                raise InvalidInputError(
                    f"{path}:{lineno}: {text!r} is not an integer training index (one index per line)"
                ) from None
        return cls(kind="indices", indices=tuple(sorted(set(indices))), source=str(path))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"], d["indices"] = list(self.classes), list(self.indices)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ForgetSpec:
        return cls(kind=d["kind"], classes=tuple(d.get("classes", ())), fraction=float(d.get("fraction", 0.0)),
                   indices=tuple(d.get("indices", ())), seed=int(d.get("seed", 0)), source=d.get("source", ""))

    def describe(self, class_names: list[str] | None = None) -> str:
        if self.kind == "class":
            names = [class_names[c] if class_names and c < len(class_names) else str(c) for c in self.classes]
            return "class " + ", ".join(f"{c} ({n})" for c, n in zip(self.classes, names, strict=True))
        if self.kind == "fraction":
            return f"random {self.fraction:.0%} of train (seed {self.seed})"
        return f"{len(self.indices)} listed training records" + (f" from {self.source}" if self.source else "")


def stratified_indices(targets: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """`size` sorted indices into `targets`, each class in proportion to its share, chosen by `seed`.

    Per-class counts are the proportional quotas rounded by largest remainder (ties to the lower
    class), so each is within one of `size * share`; a balanced set gets equal counts. The same
    `(size, seed)` always gives the same indices.
    """
    n = len(targets)
    classes = torch.unique(targets)
    if isinstance(size, bool) or not isinstance(size, int) or not len(classes) <= size <= n:
        raise InvalidInputError(
            f"train subset size {size!r} is not an integer in [{len(classes)}, {n}] "
            f"(at least the number of classes, at most the {n} training images)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"train subset seed {seed!r} is not an integer")
    counts = torch.stack([(targets == c).sum() for c in classes])
    quotas = counts.double() * size / n
    take = quotas.floor().long()
    # the records still missing go to the classes with the largest remainders (lower class first)
    extra = torch.sort(take.double() - quotas, stable=True).indices[: size - int(take.sum())]
    take[extra] += 1
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for c, k in zip(classes.tolist(), take.tolist(), strict=True):
        idx = (targets == c).nonzero().flatten()
        parts.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    return torch.cat(parts).sort().values


def stratified_subset(dataset: ImageDataset, size: int, seed: int = 0) -> ImageDataset:
    """A seeded, class-stratified subset of `size` records of `dataset`, in the dataset's order.

    How a benchmark runs on a stated part of a large training set (e.g. 20,000 of Fashion-MNIST's
    60,000 training images: 2,000 per class). See `stratified_indices`.
    """
    return dataset.subset(stratified_indices(dataset.targets, size, seed))


@dataclass
class Splits:
    """The datasets every method and metric works on.

    Indices refer to the training set the original model was given: the dataset's train set, or
    its stratified train subset when the original was trained on one (see `stratified_subset`).
    """

    forget: ImageDataset
    retain: ImageDataset
    val: ImageDataset
    test_retain: ImageDataset
    test_forget: ImageDataset
    forget_indices: torch.Tensor
    retain_indices: torch.Tensor
    val_indices: torch.Tensor
    spec: ForgetSpec | None
    num_classes: int

    def sizes(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("forget", "retain", "val", "test_retain", "test_forget")}

    def loader(self, part: str, batch_size: int = 256, shuffle: bool = False, seed: int = 0) -> DataLoader:
        return make_loader(getattr(self, part), batch_size=batch_size, shuffle=shuffle, seed=seed)


def _identity_collate(batch):
    return batch


def make_loader(dataset: ImageDataset, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A standard DataLoader whose fetches are whole batches (see `ImageDataset.__getitems__`).

    Shuffling uses its own seeded generator, so the order depends on `seed` alone.
    """
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=_identity_collate, drop_last=drop_last)


def build_splits(bundle: DatasetBundle, spec: ForgetSpec | None, val_fraction: float = 0.1,
                 seed: int = 0) -> Splits:
    """Carve a seeded, stratified validation split out of train, then split the rest by `spec`.

    D_f and D_r partition train minus val. For class-wise forgetting the test set splits into
    test-retain and test-forget; for sample-wise forgetting test-forget is empty. `spec=None`
    (plain training) puts everything not in val into D_r.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidInputError(f"val fraction {val_fraction} is outside [0, 1)")
    targets = bundle.train.targets
    n = len(targets)
    gen = torch.Generator().manual_seed(seed)
    # Stratified validation split: the same fraction of every class.
    val_parts = []
    for c in range(bundle.num_classes):
        idx = (targets == c).nonzero().flatten()
        take = int(round(len(idx) * val_fraction))
        val_parts.append(idx[torch.randperm(len(idx), generator=gen)[:take]])
    val_idx = torch.cat(val_parts).sort().values if val_parts else torch.empty(0, dtype=torch.long)
    in_val = torch.zeros(n, dtype=torch.bool)
    in_val[val_idx] = True

    forget_mask = torch.zeros(n, dtype=torch.bool)
    test_forget_mask = torch.zeros(len(bundle.test), dtype=torch.bool)
    if spec is not None:
        if spec.kind == "class":
            bad = [c for c in spec.classes if not 0 <= c < bundle.num_classes]
            if bad:
                raise InvalidInputError(
                    f"forget class {bad[0]} is outside [0, {bundle.num_classes}) for {bundle.name}"
                )
            forget_mask = torch.isin(targets, torch.tensor(spec.classes))
            test_forget_mask = torch.isin(bundle.test.targets, torch.tensor(spec.classes))
        elif spec.kind == "fraction":
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed))
            forget_mask[perm[: int(round(spec.fraction * n))]] = True
        else:
            bad = [i for i in spec.indices if not 0 <= i < n]
            if bad:
                raise InvalidInputError(
                    f"forget index {bad[0]} is outside the training set [0, {n}) of {bundle.name}"
                )
            forget_mask[torch.tensor(spec.indices, dtype=torch.long)] = True
        # A record asked to be forgotten is never used, not even for validation.
        in_val &= ~forget_mask
        val_idx = in_val.nonzero().flatten()
    retain_mask = ~forget_mask & ~in_val
    forget_idx, retain_idx = forget_mask.nonzero().flatten(), retain_mask.nonzero().flatten()
    if spec is not None and len(forget_idx) == 0:
        raise InvalidInputError(f"the forget set ({spec.describe(bundle.classes)}) is empty")
    if len(retain_idx) == 0:
        raise InvalidInputError("the forget set is the whole training set; nothing would be retained")
    test_idx = torch.arange(len(bundle.test))
    return Splits(
        forget=bundle.train.subset(forget_idx, augment=False),
        retain=bundle.train.subset(retain_idx),
        val=bundle.train.subset(val_idx, augment=False),
        test_retain=bundle.test.subset(test_idx[~test_forget_mask]),
        test_forget=bundle.test.subset(test_idx[test_forget_mask]),
        forget_indices=forget_idx, retain_indices=retain_idx, val_indices=val_idx,
        spec=spec, num_classes=bundle.num_classes,
    )
