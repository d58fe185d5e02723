"""prunelora's own image dataset: uint8 images in one tensor, fetched and normalised a batch at a time.

Its own module, below both `generic` (which takes the fast path for it) and `datasets` (which
loads the named data sets into it), so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset


class ImageDataset(Dataset):
    """Images as a uint8 tensor (N, C, H, W) with integer `targets` (N,).

    Indexing with a list of indices (`__getitems__`) returns one normalised float batch, so a
    standard `DataLoader` (and hence Accelerate's sharded loader) fetches a batch in one step.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images = images
        self.targets = targets.long()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, indices: torch.Tensor | Sequence[int], augment: bool | None = None) -> ImageDataset:
        """A new dataset over the given indices (copies the selected rows; the original is untouched)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(
            self.images[idx], self.targets[idx], self.mean.flatten().tolist(),
            self.std.flatten().tolist(), self.augment if augment is None else augment,
        )

    def eval_view(self) -> ImageDataset:
        """The same records without augmentation (tensors shared, nothing copied): what every
        prediction made for evaluation sees, so that RA, the membership attacks' members and the
        non-members are all scored on un-augmented images."""
        if not self.augment:
            return self
        view = object.__new__(ImageDataset)
        view.__dict__.update(self.__dict__)
        view.augment = False
        return view

    def with_targets(self, targets: torch.Tensor) -> ImageDataset:
        """The same images with other labels (e.g. random wrong labels for the forget set)."""
        return ImageDataset(self.images, targets, self.mean.flatten().tolist(), self.std.flatten().tolist(),
                            self.augment)

    def concat(self, other: ImageDataset) -> ImageDataset:
        """This dataset followed by `other` (same normalisation; augmentation of this one)."""
        return ImageDataset(torch.cat([self.images, other.images]), torch.cat([self.targets, other.targets]),
                            self.mean.flatten().tolist(), self.std.flatten().tolist(), self.augment)

    def _transform(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0)
        if self.augment:
            x = random_crop_flip(x)
        return (x - self.mean) / self.std

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self._transform(self.images[idx]), self.targets[idx]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]


def random_crop_flip(x: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, per image, using torch's global RNG."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,))
    dx = torch.randint(0, 2 * padding + 1, (n,))
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w)
    batch = torch.arange(n).view(n, 1, 1, 1)
    chan = torch.arange(x.shape[1]).view(1, -1, 1, 1)
    out = padded[batch, chan, rows, cols]
    flip = torch.rand(n) < 0.5
    out[flip] = out[flip].flip(-1)
    return out
