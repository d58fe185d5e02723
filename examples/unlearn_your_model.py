"""Unlearn with your own PyTorch model and your own Dataset: no prunelora registry, no checkpoint.

Run it:  python examples/unlearn_your_model.py   (a few seconds on a CPU)

A small CNN is trained on a synthetic 4-class image dataset (your model and data go here), then
made to forget class 1 with PruneLoRA and with random-label fine-tuning; an exact retrain is the
reference every metric is compared with.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

import prunelora
from prunelora import TrainConfig

CLASSES, FORGET = 4, 1


class MyImages(TensorDataset):
    """Your dataset: any map-style Dataset of (image tensor, int label), with its own transform."""

    def __getitem__(self, index):
        image, label = super().__getitem__(index)
        return (image - 0.5) / 0.25, int(label)  # your normalisation: prunelora guesses none


def make_images(n: int, seed: int) -> MyImages:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    images = torch.rand(n, 3, 16, 16, generator=gen)
    for c in range(CLASSES):  # each class lights up its own corner, faintly, under noise
        images[labels == c, :, (c // 2) * 8:(c // 2) * 8 + 6, (c % 2) * 8:(c % 2) * 8 + 6] += 0.3
    return MyImages(images, labels)


def my_model() -> nn.Module:
    """Your model: any classifier whose last layer is an nn.Linear (named anything)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, CLASSES),
    )


def main() -> dict[str, dict[str, float]]:
    train, test = make_images(240, seed=0), make_images(160, seed=1)
    labels = torch.arange(len(train)) % CLASSES
    forget = Subset(train, (labels == FORGET).nonzero().flatten().tolist())  # D_f: the deletion request
    retain = Subset(train, (labels != FORGET).nonzero().flatten().tolist())  # D_r: everything else

    recipe = TrainConfig(epochs=8, batch_size=32, optimizer="adam", lr=3e-3, seed=0)
    torch.manual_seed(0)
    original = my_model()
    prunelora.fit(original, train, recipe, progress=False)  # your own training loop works as well
    data = {"retain": retain, "forget": forget, "test": test, "forget_classes": [FORGET]}
    judge = {"relearn": None, "throughput": False, "macs": False}  # the quick metrics only

    # the reference: retrain from scratch on D_r with the same recipe
    exact = prunelora.unlearn(original, method="retrain", model_factory=my_model, recipe=recipe,
                              progress=False, **data)
    reference = prunelora.evaluate(exact.model, **judge, **data).metrics
    results = {"retrain": reference}
    for method, options in (("prunelora", {"epochs": 5, "batch_size": 32}),
                            ("random-label", {"epochs": 2, "batch_size": 32})):
        result = prunelora.unlearn(original, method=method, progress=False, **options, **data)
        results[method] = prunelora.evaluate(result.model, reference=reference, **judge, **data).metrics
    print(f"{'method':<14}{'UA':>7}{'RA':>7}{'TA':>7}{'Avg.Gap':>9}{'Probe-FA':>10}")
    for method, m in results.items():
        print(f"{method:<14}{m['UA']:7.1f}{m['RA']:7.1f}{m['TA']:7.1f}{m.get('Avg.Gap', 0.0):9.1f}{m['Probe-FA']:10.1f}")
    return results


if __name__ == "__main__":
    main()
