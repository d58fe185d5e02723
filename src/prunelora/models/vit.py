"""A small Vision Transformer for training from scratch on small images.

Attention is `nn.MultiheadAttention`. LoRA adapts it in the weight form, `W + (alpha/r)·B@A` on
its packed `in_proj_weight` and its `out_proj.weight`, whatever the LoRA backend (see
`prunelora.adapters.lora`). (A module-level LoRA on its `out_proj` alone would never run:
MultiheadAttention's forward reads `out_proj.weight` directly, which is why the reference code's
ViT "LoRA" trained only the head.)
"""

from __future__ import annotations

import torch
from torch import nn

from prunelora.errors import InvalidInputError
from prunelora.models.classifier import Classifier
from prunelora.models.registry import register_model
from prunelora.models.resnet import MAX_WIDTH


def default_patch_size(image_size: int) -> int:
    """Patches that give a 4x4 to 8x8 token grid for the small images this library targets."""
    if image_size <= 16:
        return 2
    if image_size <= 64:
        return 4
    return 16


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(Classifier):
    def __init__(self, num_classes: int, in_channels: int, image_size: int, dim: int, depth: int, heads: int,
                 mlp_ratio: float = 2.0, patch_size: int | None = None, dropout: float = 0.0,
                 width: float = 1.0) -> None:
        super().__init__()
        if depth < 1:
            raise InvalidInputError(f"ViT depth {depth} must be >= 1")
        if not 0 < width <= MAX_WIDTH:  # NaN, infinity and 1e9 too
            raise InvalidInputError(f"width multiplier {width} is outside (0, {MAX_WIDTH}]")
        patch = patch_size or default_patch_size(image_size)
        if image_size % patch:
            raise InvalidInputError(f"patch size {patch} does not divide image size {image_size}")
        dim = max(heads, int(round(dim * width / heads)) * heads)  # keep dim divisible by heads
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, patch)
        num_patches = (image_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, int(dim * mlp_ratio), dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos_embed
        return self.norm(self.blocks(tokens))[:, 0]


@register_model("vit-tiny", "ViT: dim 128, 6 blocks, 4 heads, MLP 256; patch fits the image size")
def vit_tiny(num_classes: int, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
             patch_size: int | None = None, dropout: float = 0.0, depth: int = 6) -> ViT:
    return ViT(num_classes, in_channels, image_size, dim=128, depth=depth, heads=4, mlp_ratio=2.0,
               patch_size=patch_size, dropout=dropout, width=width)


@register_model("vit-small", "ViT: dim 256, 8 blocks, 8 heads, MLP 512; patch fits the image size")
def vit_small(num_classes: int, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
              patch_size: int | None = None, dropout: float = 0.0, depth: int = 8) -> ViT:
    return ViT(num_classes, in_channels, image_size, dim=256, depth=depth, heads=8, mlp_ratio=2.0,
               patch_size=patch_size, dropout=dropout, width=width)
