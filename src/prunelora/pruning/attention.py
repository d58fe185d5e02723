"""Multi-head attention that can hold fewer heads than its token width, for head pruning.

`nn.MultiheadAttention` cannot hold fewer heads than its width (its q/k/v width is its embedding
width), so an attention that loses heads becomes a `PrunedAttention` with q/k/v/out `nn.Linear`
projections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from prunelora.errors import InvalidInputError


def check_convertible(mha: nn.MultiheadAttention) -> None:
    if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
        raise InvalidInputError("head pruning supports MultiheadAttention without kdim/vdim, "
                                "bias_k/bias_v or add_zero_attn")


class PrunedAttention(nn.Module):
    """Multi-head attention whose q/k/v width is `num_heads * head_dim`, not the token width.

    A drop-in for `nn.MultiheadAttention` in the models here (same call, same result with all
    heads kept). The projections are `nn.Linear` modules that are called, so LoRA can adapt them.
    """

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True) -> None:
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first
        inner = num_heads * head_dim
        self.q_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.k_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.v_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention) -> PrunedAttention:
        """The same function as `mha`, with its packed q/k/v split into three linears."""
        check_convertible(mha)
        bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, mha.head_dim, mha.dropout, bias, mha.batch_first)
        new.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        with torch.no_grad():
            for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
                proj.weight.copy_(mha.in_proj_weight.chunk(3)[i])
                if bias:
                    proj.bias.copy_(mha.in_proj_bias.chunk(3)[i])
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if bias:
                new.out_proj.bias.copy_(mha.out_proj.bias)
        new.train(mha.training)
        return new

    @torch.no_grad()
    def keep_heads(self, heads: Sequence[int]) -> None:
        """Keep only `heads` (indices, in this order): rows of q/k/v, columns of the out projection."""
        index = torch.tensor(list(heads), dtype=torch.long, device=self.q_proj.weight.device)
        rows = (index[:, None] * self.head_dim + torch.arange(self.head_dim, device=index.device)).flatten()
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            proj.weight = nn.Parameter(proj.weight.index_select(0, rows))
            if proj.bias is not None:
                proj.bias = nn.Parameter(proj.bias.index_select(0, rows))
            proj.out_features = len(rows)
        self.out_proj.weight = nn.Parameter(self.out_proj.weight.index_select(1, rows))
        self.out_proj.in_features = len(rows)
        self.num_heads = len(index)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise InvalidInputError("PrunedAttention takes no attention masks")
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        batch, length, _ = query.shape

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, L, h*d) -> (B, h, L, d)
            return x.view(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(query)), heads(self.k_proj(key)), heads(self.v_proj(value))
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # the explicit path, as nn.MultiheadAttention returns the weights
            weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
            out = F.dropout(weights, p, self.training) @ v
            weights = weights.mean(dim=1) if average_attn_weights else weights
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))
        return (out if self.batch_first else out.transpose(0, 1)), weights


def pruned_attention_macs_hook(module: PrunedAttention, inputs, output) -> None:
    """Torch-Pruning op-counter hook: multiply-accumulates of a `PrunedAttention` call, counted
    like its counter for `nn.MultiheadAttention` (projections, scores, softmax, weighted sum)."""
    query, key = inputs[0], inputs[1]
    batch_dim, len_dim = (0, 1) if module.batch_first else (1, 0)
    q_len, k_len = query.shape[len_dim], key.shape[len_dim]
    inner, width, heads = module.num_heads * module.head_dim, module.embed_dim, module.num_heads
    bias = module.q_proj.bias is not None
    macs = q_len * inner  # scaling q
    macs += (q_len + 2 * k_len) * width * inner + (q_len + 2 * k_len) * inner * bias
    macs += heads * (2 * q_len * k_len * module.head_dim + q_len * k_len)
    macs += q_len * inner * width + q_len * width * bias
    module.__flops__ += int(macs * query.shape[batch_dim])
