"""Forget specifications and the one split builder (D_f, D_r, val, test-retain, test-forget)."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from prunelora.data.datasets import DatasetBundle
from prunelora.data.generic import subset, targets_of
from prunelora.data.overlap import shared_records
from prunelora.errors import InvalidInputError, MissingFileError
from prunelora.typecheck import check_seed

FORGET_OPTIONS = ("forget_class", "forget_fraction", "forget_indices")  # give exactly one


_ASCII_INT = re.compile(r"[+-]?[0-9]+")


def ascii_int(text: str) -> int:
    """`int(text)` for ASCII digits only: Python's `int` also reads `1_0` as 10 and Arabic-Indic or
    full-width digits (`٣`, `３`) as 3, which a record number in a deletion request must not be.

    Args:
        text: the number as written (surrounding blanks are ignored).

    Returns:
        Its value.

    Raises:
        ValueError: `text` (stripped) is not an optional sign followed by ASCII digits.
    """
    stripped = text.strip()
    if not _ASCII_INT.fullmatch(stripped):
        raise ValueError(f"{text!r} is not an integer of ASCII digits")
    return int(stripped)


def read_index_file(path: str | os.PathLike, label: str, noun: str = "index") -> list[int]:
    """The integers of a file holding one record index per line, in file order (blank lines and
    `#` comments ignored; ASCII digits only, as `ascii_int` reads them).

    Args:
        path: the file.
        label: how messages name the file (e.g. `"forget index"`: "forget index file ... does not exist").
        noun: how messages name one line's number (e.g. `"training index"`).

    Returns:
        The indices, repeats kept.

    Raises:
        MissingFileError: the file does not exist.
        InvalidInputError: the file is not UTF-8 text, or a line is not an integer.
    """
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"{label} file {str(file)!r} does not exist")
    try:
        content = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{label} file {str(file)!r} is not UTF-8 text (byte {exc.start})") from None
    indices = []
    for lineno, line in enumerate(content.splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            indices.append(ascii_int(text))
        except ValueError:
            raise InvalidInputError(f"{file}:{lineno}: {text!r} is not an integer {noun} (one index per line)") \
                from None
    return indices


@dataclass(frozen=True)
class ForgetSpec:
    """What to forget: whole classes, a seeded random fraction of train, or explicit train indices.

    Build one with `ForgetSpec.from_classes(3)`, `ForgetSpec.from_classes("3,5")` or
    `ForgetSpec.from_index_file("request.txt")` (one training index per line).

    Attributes:
        kind: `"class"`, `"fraction"` or `"indices"`.
        classes: the forgotten classes (kind `"class"`).
        fraction: the share of the training records, in (0, 1) (kind `"fraction"`).
        indices: the training indices (kind `"indices"`).
        seed: which records a fraction draws.
        source: the index file a deletion request came from, for the record.
        skip_heldout: a deletion request naming records of the original's validation split (never
            trained on) drops them instead of being refused (`build_splits`).
        skipped: the validation records a request dropped, for the record (set by `build_splits`).

    Raises:
        InvalidInputError: an unknown kind, a fraction outside (0, 1), or no class.
    """

    kind: str  # "class" | "fraction" | "indices"
    classes: tuple[int, ...] = ()
    fraction: float = 0.0
    indices: tuple[int, ...] = ()
    seed: int = 0
    source: str = ""  # the index file a deletion request came from, for the record
    skip_heldout: bool = False
    skipped: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("class", "fraction", "indices"):
            raise InvalidInputError(f"forget kind {self.kind!r} is not one of: class, fraction, indices")
        if self.kind == "fraction" and not 0.0 < self.fraction < 1.0:
            raise InvalidInputError(f"--forget-fraction {self.fraction} is outside (0, 1)")
        if self.kind == "class" and not self.classes:
            raise InvalidInputError("--forget-class needs at least one class index")
        check_seed(self.seed, "--forget-seed")

    @classmethod
    def from_classes(cls, classes: int | str | list[int] | tuple[int, ...]) -> ForgetSpec:
        """Forget whole classes.

        Args:
            classes: a class index (`3`), a comma-separated string (`"3,5"`) or a list (`[3, 5]`).

        Returns:
            The spec, its classes sorted and without repeats.

        Raises:
            InvalidInputError: a string that is not a list of class indices, or no class.
        """
        if isinstance(classes, str):
            try:
                parsed = tuple(ascii_int(c) for c in classes.split(",") if c.strip())
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
        """Forget the records a deletion request names: one training index per line.

        Blank lines and `#` comments are ignored.

        Args:
            path: the index file.

        Returns:
            The spec, its indices sorted and without repeats; `source` records the file.

        Raises:
            MissingFileError: the file does not exist.
            InvalidInputError: the file is not UTF-8 text, or a line is not an integer.
        """
        indices = read_index_file(path, "forget index", "training index")
        return cls(kind="indices", indices=tuple(sorted(set(indices))), source=str(path))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"], d["indices"] = list(self.classes), list(self.indices)
        # written only when used: every other request keeps the dict (and the run ids) it always had
        if not self.skip_heldout:
            del d["skip_heldout"]
        if self.skipped:
            d["skipped"] = list(self.skipped)
        else:
            del d["skipped"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ForgetSpec:
        return cls(kind=d["kind"], classes=tuple(d.get("classes", ())), fraction=float(d.get("fraction", 0.0)),
                   indices=tuple(d.get("indices", ())), seed=int(d.get("seed", 0)), source=d.get("source", ""),
                   skip_heldout=bool(d.get("skip_heldout", False)), skipped=tuple(d.get("skipped", ())))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, required: bool = True,
                     owner: str | None = None) -> ForgetSpec | None:
        """The spec exactly one of `forget_class`, `forget_fraction` and `forget_indices` describes.

        The one parser of a forget request: the command line's flags and a bench scenario's keys
        both come here. Errors name the command-line flags, or, when `owner` is given (e.g.
        `"scenario 'class3'"`), the keys of that configuration entry.

        Args:
            options: a mapping with `forget_class` (an index, `"3,5"` or a list), `forget_fraction`
                (drawn with `forget_seed`) or `forget_indices` (an index file).
            required: refuse a request that names nothing.
            owner: the configuration entry the options come from, for the error messages.

        Returns:
            The spec, or None when nothing is given and the request is not `required`.

        Raises:
            InvalidInputError: none or several of the three given, or a bad value.
        """
        given = [name for name in FORGET_OPTIONS if options.get(name) is not None]
        if owner is not None and len(given) != 1:
            raise InvalidInputError(f"{owner} needs exactly one of {', '.join(FORGET_OPTIONS)}")
        if len(given) > 1:
            raise InvalidInputError("give exactly one of --forget-class, --forget-fraction, --forget-indices (got "
                                    + ", ".join("--" + g.replace("_", "-") for g in given) + ")")
        if not given:
            if required:
                raise InvalidInputError("say what to forget: --forget-class C, --forget-fraction F or "
                                        "--forget-indices FILE")
            return None
        if options.get("skip_heldout") and given[0] != "forget_indices":
            raise InvalidInputError("--skip-heldout is for --forget-indices (a class or a fraction is drawn from the "
                                    "records the original trained on only)")
        if options.get("forget_class") is not None:
            value = options["forget_class"]
            return cls.from_classes(",".join(map(str, value)) if isinstance(value, list) else str(value))
        if options.get("forget_fraction") is not None:
            try:
                fraction = float(options["forget_fraction"])
            except (TypeError, ValueError):
                raise InvalidInputError(f"forget fraction {options['forget_fraction']!r} is not a number "
                                        "in (0, 1)") from None
            return cls(kind="fraction", fraction=fraction, seed=options.get("forget_seed") or 0)
        spec = cls.from_index_file(options["forget_indices"])
        return replace(spec, skip_heldout=True) if options.get("skip_heldout") else spec

    def describe(self, class_names: list[str] | None = None) -> str:
        if self.kind == "class":
            names = [class_names[c] if class_names and c < len(class_names) else str(c) for c in self.classes]
            return "class " + ", ".join(f"{c} ({n})" for c, n in zip(self.classes, names, strict=True))
        if self.kind == "fraction":
            return f"random {self.fraction:.0%} of train (seed {self.seed})"
        skipped = f" ({len(self.skipped)} held-out records of the request skipped)" if self.skipped else ""
        return (f"{len(self.indices)} listed training records" + (f" from {self.source}" if self.source else "")
                + skipped)


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
    check_seed(seed, "--subset-seed: the train subset seed")
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


def stratified_subset(dataset: Dataset, size: int, seed: int = 0) -> Dataset:
    """A seeded, class-stratified subset of `size` records of `dataset`, in the dataset's order.

    How a benchmark runs on a stated part of a large training set (e.g. 20,000 of Fashion-MNIST's
    60,000 training images: 2,000 per class). See `stratified_indices`.
    """
    return subset(dataset, stratified_indices(targets_of(dataset), size, seed))


@dataclass
class Splits:
    """The datasets every method and metric works on.

    Indices refer to the training set the original model was given: the dataset's train set, or
    its stratified train subset when the original was trained on one (see `stratified_subset`).
    Build them with `build_splits`, or from your own datasets with `Splits.from_datasets`.

    Attributes:
        forget: D_f, the training records to forget.
        retain: D_r, the rest of the original's training records.
        val: the original's validation split.
        test_retain: test samples of the retained classes (all of them for sample-wise forgetting).
        test_forget: test samples of the forgotten classes (empty for sample-wise forgetting).
        forget_indices: D_f's indices in the training set.
        retain_indices: D_r's indices in the training set.
        val_indices: the validation split's indices in the training set.
        spec: what was forgotten (None for plain training).
        num_classes: the number of classes.
    """

    forget: Dataset
    retain: Dataset
    val: Dataset
    test_retain: Dataset
    test_forget: Dataset
    forget_indices: torch.Tensor
    retain_indices: torch.Tensor
    val_indices: torch.Tensor
    spec: ForgetSpec | None
    num_classes: int

    @classmethod
    def from_datasets(cls, retain: Dataset, forget: Dataset, test: Dataset | None = None, *,
                      val: Dataset | None = None, forget_classes: Sequence[int] | None = None,
                      num_classes: int | None = None) -> Splits:
        """Splits from a user's own datasets: D_r, D_f and (optionally) the test set and a validation set.

        Indices refer to `concat(retain, forget)` (D_r first).

        Args:
            retain: D_r, a map-style Dataset of `(image, label)`.
            forget: D_f.
            test: the test set; with `forget_classes` it is split into test-retain and test-forget by
                label, otherwise it is all test-retain.
            val: a validation set.
            forget_classes: the forgotten classes, for class-wise forgetting.
            num_classes: the number of classes (default: the largest label seen plus one).

        Returns:
            The `Splits`.

        Raises:
            InvalidInputError: an empty retain set, a `num_classes` below a label seen, a forgotten
                class outside the classes, `forget_classes` that disagree with the labels (a forget
                record of another class, a retain record of a forgotten one), or retain and forget
                sets that share records (the same index of one dataset; or equal input and label for
                most of the forget set; a few equal records are a warning).
        """
        empty = Subset(retain, [])
        test = test if test is not None else empty
        val = val if val is not None else empty
        if len(retain) == 0:
            raise InvalidInputError("the retain set is empty; nothing would be retained")
        labels = [targets_of(d) for d in (retain, forget, test, val)]
        seen = int(max(int(t.max()) for t in labels if len(t))) + 1
        num_classes = seen if num_classes is None else num_classes
        if num_classes < seen:
            raise InvalidInputError(f"num_classes {num_classes} is below the largest label + 1 ({seen})")
        test_targets = labels[2]
        if forget_classes is not None:
            spec = ForgetSpec.from_classes(list(forget_classes))
            bad = [c for c in spec.classes if not 0 <= c < num_classes]
            if bad:
                raise InvalidInputError(f"forget class {bad[0]} is outside [0, {num_classes})")
            _check_class_sets(labels[0], labels[1], spec.classes)
            in_forget = torch.isin(test_targets, torch.tensor(spec.classes))
        else:
            spec = ForgetSpec(kind="indices", indices=tuple(range(len(retain), len(retain) + len(forget))),
                              source="datasets given to the API")
            in_forget = torch.zeros(len(test_targets), dtype=torch.bool)
        if len(forget) == 0:
            raise InvalidInputError("the forget set is empty")
        _check_disjoint(retain, forget)
        test_idx = torch.arange(len(test_targets))
        n_r = len(retain)
        return cls(forget=forget, retain=retain, val=val, test_retain=subset(test, test_idx[~in_forget]),
                   test_forget=subset(test, test_idx[in_forget]),
                   forget_indices=torch.arange(n_r, n_r + len(forget)), retain_indices=torch.arange(n_r),
                   val_indices=torch.empty(0, dtype=torch.long), spec=spec, num_classes=num_classes)

    def sizes(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("forget", "retain", "val", "test_retain", "test_forget")}


def _check_class_sets(retain_targets: torch.Tensor, forget_targets: torch.Tensor, classes: tuple[int, ...]) -> None:
    """Class-wise forgetting: D_f holds only the forgotten classes, D_r none of them."""
    forgotten = torch.tensor(classes)
    stray = (~torch.isin(forget_targets, forgotten)).nonzero().flatten()
    if len(stray):
        i = int(stray[0])
        raise InvalidInputError(
            f"forget_classes {list(classes)} do not match the forget set: {len(stray)} of its {len(forget_targets)} "
            f"records are of other classes (record {i} has label {int(forget_targets[i])}); a class-wise forget set "
            "holds only records of the forgotten classes")
    kept = torch.isin(retain_targets, forgotten).nonzero().flatten()
    if len(kept):
        i = int(kept[0])
        raise InvalidInputError(
            f"the retain set holds {len(kept)} records of the forgotten classes {list(classes)} (record {i} has "
            f"label {int(retain_targets[i])}); it would keep training on the class it should forget")


def _check_disjoint(retain: Dataset, forget: Dataset) -> None:
    """Refuse retain and forget sets that share records (by identity; by content when most of D_f is
    in D_r), and warn of a few equal records (duplicates the data may genuinely hold)."""
    overlap = shared_records(retain, forget)
    if overlap is None:
        return
    f, r = overlap.pairs[0]
    how = "is" if overlap.by_identity else "has the input and label of"
    where = f"(e.g. forget record {f} {how} retain record {r})"
    if overlap.by_identity or 2 * overlap.count > len(forget):
        raise InvalidInputError(
            f"the retain and forget sets share {overlap.count} of the forget set's {len(forget)} records {where}; "
            "the retain set must hold the training records to keep, without the ones to forget")
    warnings.warn(f"{overlap.count} of the forget set's {len(forget)} records equal a retain record {where}: "
                  "duplicates in the data? The model keeps training on their copies", UserWarning, stacklevel=4)


def resolve_splits(splits: Splits | None, retain=None, forget=None, test=None, forget_classes=None, *,
                   num_classes: int | None = None) -> Splits:
    """`splits`, or Splits built from a user's datasets (`Splits.from_datasets`): exactly one of the two."""
    if splits is not None:
        if retain is not None or forget is not None or test is not None:
            raise InvalidInputError("pass either splits or retain=/forget=/test= datasets, not both")
        return splits
    if retain is None or forget is None:
        raise InvalidInputError("no data: pass splits (build_splits) or your datasets as retain= and forget=")
    return Splits.from_datasets(retain, forget, test, forget_classes=forget_classes, num_classes=num_classes)


def validation_indices(targets: torch.Tensor, num_classes: int, val_fraction: float = 0.1,
                       seed: int = 0) -> torch.Tensor:
    """The seeded, stratified validation split of a training set: sorted indices into `targets`.

    Fixed when the original model is trained (and recorded in its meta.json): the original never
    trains on these records, so they are never part of a forget set, and they stay the validation
    set of every model unlearned from it.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidInputError(f"val fraction {val_fraction} is outside [0, 1)")
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for c in range(num_classes):
        idx = (targets == c).nonzero().flatten()
        take = int(round(len(idx) * val_fraction))
        parts.append(idx[torch.randperm(len(idx), generator=gen)[:take]])
    return torch.cat(parts).sort().values if parts else torch.empty(0, dtype=torch.long)


def _checked_val_indices(val_indices, n: int, name: str) -> torch.Tensor:
    """Recorded validation indices as a sorted tensor, refused unless distinct and inside [0, n)."""
    try:
        idx = torch.as_tensor(list(val_indices), dtype=torch.long)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInputError("the recorded validation indices are not a list of integers") from None
    if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= n)) or len(idx.unique()) != len(idx):
        raise InvalidInputError(
            f"the recorded validation indices are not distinct indices into the {n} training images of {name}"
        )
    return idx.sort().values


SHOWN_INDICES = 20  # a refusal lists this many offending indices, then counts the rest


def _listed(indices: Sequence[int], total: int) -> str:
    """The subject of a refusal naming every offending index of a request of `total`: `forget index
    5 is` or `forget indices 1, 5, 9 (3 of 50) are` (the first `SHOWN_INDICES`, then how many more)."""
    if len(indices) == 1:
        return f"forget index {indices[0]} is"
    shown = ", ".join(str(i) for i in indices[:SHOWN_INDICES])
    more = f", ... ({len(indices) - SHOWN_INDICES} more)" if len(indices) > SHOWN_INDICES else ""
    return f"forget indices {shown}{more} ({len(indices)} of {total}) are"


def build_splits(bundle: DatasetBundle, spec: ForgetSpec | None, val_fraction: float = 0.1,
                 seed: int = 0, val_indices=None) -> Splits:
    """Split the training set into val, D_f and D_r, and the test set into test-retain / test-forget.

    The validation split is the original's (`validation_indices(...)`, or `val_indices` as its
    meta.json recorded them) and is the same before and after unlearning. D_f is drawn from the
    original's training indices only (train minus val): a class-wise D_f is every training image of
    the class the original trained on, a random fraction is that fraction of them, and an index file
    naming a validation record (never trained on, so nothing to forget) is refused. D_r is the rest.
    For class-wise forgetting the test set splits into test-retain and test-forget; for sample-wise
    forgetting test-forget is empty.

    Args:
        bundle: the dataset (`load_dataset(...)`).
        spec: what to forget; None (plain training) puts all training indices in D_r.
        val_fraction: share of the training set held out for validation.
        seed: seed of the validation split.
        val_indices: the validation indices an original's meta.json recorded (they win over
            `val_fraction` and `seed`).

    Returns:
        The `Splits`: `.forget`, `.retain`, `.val`, `.test_retain`, `.test_forget` and their indices.

    Raises:
        InvalidInputError: a class the dataset does not have, indices outside the training set, or in
            the validation split (every one is listed, up to 20) unless `spec.skip_heldout`: then
            they are dropped and the returned splits' `spec.skipped` lists them.

    Example:
        ```python
        splits = prunelora.build_splits(prunelora.load_dataset("digits"), ForgetSpec.from_classes(3))
        ```
    """
    targets = targets_of(bundle.train)
    n = len(targets)
    if val_indices is None:
        val_idx = validation_indices(targets, bundle.num_classes, val_fraction, seed)
    else:
        val_idx = _checked_val_indices(val_indices, n, bundle.name)
    in_val = torch.zeros(n, dtype=torch.bool)
    in_val[val_idx] = True
    trained = ~in_val  # the records the original model was trained on

    forget_mask = torch.zeros(n, dtype=torch.bool)
    test_forget_mask = torch.zeros(len(bundle.test), dtype=torch.bool)
    if spec is not None:
        if spec.kind == "class":
            bad = [c for c in spec.classes if not 0 <= c < bundle.num_classes]
            if bad:
                raise InvalidInputError(
                    f"forget class {bad[0]} is outside [0, {bundle.num_classes}) for {bundle.name}"
                )
            forget_mask = torch.isin(targets, torch.tensor(spec.classes)) & trained
            test_forget_mask = torch.isin(targets_of(bundle.test), torch.tensor(spec.classes))
        elif spec.kind == "fraction":
            candidates = trained.nonzero().flatten()
            perm = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(spec.seed))
            forget_mask[candidates[perm[: int(round(spec.fraction * len(candidates)))]]] = True
        else:
            bad = [i for i in spec.indices if not 0 <= i < n]
            if bad:
                raise InvalidInputError(
                    f"{_listed(bad, len(spec.indices))} outside the training set [0, {n}) of {bundle.name}"
                )
            held_out = [i for i in spec.indices if in_val[i]]
            if held_out and not spec.skip_heldout:
                raise InvalidInputError(
                    f"{_listed(held_out, len(spec.indices))} in the original's validation split, which it never "
                    f"trained on; accepted: training indices in [0, {n}) outside "
                    "it (meta.json lists them under dataset.val_indices); --skip-heldout (skip_heldout=True in "
                    "Python) drops them and records it"
                )
            if held_out:  # dropped, and recorded in the spec the result's meta.json keeps
                kept = tuple(i for i in spec.indices if not in_val[i])
                spec = replace(spec, indices=kept, skipped=tuple(sorted(set(spec.skipped) | set(held_out))))
            if spec.indices:
                forget_mask[torch.tensor(spec.indices, dtype=torch.long)] = True
    retain_mask = trained & ~forget_mask
    forget_idx, retain_idx = forget_mask.nonzero().flatten(), retain_mask.nonzero().flatten()
    if spec is not None and len(forget_idx) == 0:
        raise InvalidInputError(f"the forget set ({spec.describe(bundle.classes)}) is empty")
    if len(retain_idx) == 0:
        raise InvalidInputError("the forget set is the whole training set; nothing would be retained")
    test_idx = torch.arange(len(bundle.test))
    return Splits(
        forget=subset(bundle.train, forget_idx, augment=False),
        retain=subset(bundle.train, retain_idx),
        val=subset(bundle.train, val_idx, augment=False),
        test_retain=subset(bundle.test, test_idx[~test_forget_mask]),
        test_forget=subset(bundle.test, test_idx[test_forget_mask]),
        forget_indices=forget_idx, retain_indices=retain_idx, val_indices=val_idx,
        spec=spec, num_classes=bundle.num_classes,
    )
