"""Do a user's retain and forget sets share records? (`Splits.from_datasets` refuses it.)

Passing the whole training set as D_r and 50 of its records as D_f trains on the very records to
forget, and every metric then judges nothing. Two ways to see it:

- by identity: both are `Subset`s (at any depth) of one dataset object and name the same index;
- by content: a forget record whose input and label are those of a retain record (hashed as the
  model sees them, without prunelora's augmentation; a user's random transform defeats this).

Identity is certain, so any shared index is refused. Equal content may also be a duplicate that the
data genuinely holds, so it is refused only when most of D_f is found in D_r (the sets were built
wrongly), and otherwise reported by the caller as a warning.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Subset

from prunelora.data.generic import eval_view, fetch
from prunelora.errors import PruneLoRAError

_BATCH = 512


@dataclass(frozen=True)
class Overlap:
    """Records of D_f also in D_r: `pairs` of (forget position, retain position), the first few;
    `count` of them all; `by_identity`: the same index of the same dataset (else equal content)."""

    pairs: list[tuple[int, int]]
    count: int
    by_identity: bool


def _root(dataset: Dataset) -> tuple[Dataset, torch.Tensor | None]:
    """The dataset under any chain of `Subset`s, and the indices into it (None: not a subset)."""
    indices = None
    while isinstance(dataset, Subset):
        here = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        indices = here if indices is None else here[indices]
        dataset = dataset.dataset
    return dataset, indices


def _by_identity(retain: Dataset, forget: Dataset) -> Overlap | None:
    r_root, r_idx = _root(retain)
    f_root, f_idx = _root(forget)
    if r_root is not f_root:
        return None
    r_idx = torch.arange(len(r_root)) if r_idx is None else r_idx
    f_idx = torch.arange(len(f_root)) if f_idx is None else f_idx
    shared = torch.isin(f_idx, r_idx).nonzero().flatten()
    if not len(shared):
        return None
    first = [(int(i), int((r_idx == f_idx[i]).nonzero()[0])) for i in shared[:3]]
    return Overlap(first, len(shared), True)


def _hashes(dataset: Dataset):
    """(position, digest) of every record: its input as the model sees it, and its label."""
    view = eval_view(dataset)
    for start in range(0, len(view), _BATCH):
        x, y = fetch(view, range(start, min(start + _BATCH, len(view))))
        x = x.detach().contiguous().cpu()
        for k in range(len(x)):
            digest = hashlib.blake2b(x[k].numpy().tobytes(), digest_size=16)
            digest.update(int(y[k]).to_bytes(8, "little", signed=True))
            yield start + k, digest.digest()


def _by_content(retain: Dataset, forget: Dataset) -> Overlap | None:
    try:
        return _equal_records(retain, forget)
    except PruneLoRAError:
        raise
    except Exception:  # records that do not batch: the check is a courtesy, training will say what is wrong
        return None


def _equal_records(retain: Dataset, forget: Dataset) -> Overlap | None:
    wanted: dict[bytes, int] = {}
    for position, digest in _hashes(forget):
        wanted.setdefault(digest, position)
    pairs, found = [], set()
    for position, digest in _hashes(retain):
        f = wanted.get(digest)
        if f is not None and f not in found:
            found.add(f)
            if len(pairs) < 3:
                pairs.append((f, position))
    return Overlap(pairs, len(found), False) if found else None


def shared_records(retain: Dataset, forget: Dataset) -> Overlap | None:
    """The records of `forget` that are also in `retain` (see the module's doc), or None.

    Args:
        retain: D_r.
        forget: D_f.

    Returns:
        An `Overlap` (identity is looked for first; content only when identity finds nothing).
    """
    if len(retain) == 0 or len(forget) == 0:
        return None
    return _by_identity(retain, forget) or _by_content(retain, forget)
