"""CIFAR-style ResNets: 3x3 stem, no max-pool (the layout of the paper's reference ResNet-50).

`resnet8`/`resnet20` are He et al.'s 3-stage CIFAR nets (16/32/64 channels); `resnet18`/`resnet50`
are the 4-stage ImageNet depths with a CIFAR stem. `width` multiplies every channel count.
Shortcuts that change shape are 1x1 conv + BatchNorm, which structural pruning handles cleanly.
"""

from __future__ import annotations

import torch
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.models.classifier import Classifier
from prunelora.models.registry import register_model

MAX_WIDTH = 1024  # a width multiplier's bound (as in meta.json): beyond, shapes overflow before the size check


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.shortcut = _shortcut(in_planes, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes))


class CifarResNet(Classifier):
    def __init__(self, block: type[nn.Module], depths: list[int], widths: list[int], num_classes: int,
                 in_channels: int, width: float = 1.0) -> None:
        super().__init__()
        if not 0 < width <= MAX_WIDTH:  # NaN, infinity and 1e9 too (1e9 overflows the shapes)
            raise InvalidInputError(f"width multiplier {width} is outside (0, {MAX_WIDTH}]")
        widths = [max(1, int(round(w * width))) for w in widths]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes, stages = widths[0], []
        for i, (depth, planes) in enumerate(zip(depths, widths, strict=True)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.head = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)


@register_model("resnet8", "CIFAR ResNet-8: 3 stages x 1 basic block, 16/32/64 channels (x width)")
def resnet8(num_classes: int, in_channels: int = 3, image_size: int = 32, width: float = 1.0) -> CifarResNet:
    return CifarResNet(BasicBlock, [1, 1, 1], [16, 32, 64], num_classes, in_channels, width)


@register_model("resnet20", "CIFAR ResNet-20: 3 stages x 3 basic blocks, 16/32/64 channels (x width)")
def resnet20(num_classes: int, in_channels: int = 3, image_size: int = 32, width: float = 1.0) -> CifarResNet:
    return CifarResNet(BasicBlock, [3, 3, 3], [16, 32, 64], num_classes, in_channels, width)


@register_model("resnet18", "ResNet-18 with a 3x3 stem and no max-pool, 64..512 channels (x width)")
def resnet18(num_classes: int, in_channels: int = 3, image_size: int = 32, width: float = 1.0) -> CifarResNet:
    return CifarResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], num_classes, in_channels, width)


@register_model("resnet50", "ResNet-50 (bottleneck) with a 3x3 stem and no max-pool (the paper's model)")
def resnet50(num_classes: int, in_channels: int = 3, image_size: int = 32, width: float = 1.0) -> CifarResNet:
    return CifarResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], num_classes, in_channels, width)
