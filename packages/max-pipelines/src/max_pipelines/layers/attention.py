"""Self-attention over the paged KV cache."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from max_kernels import PendingNorm, paged_attention, rope_kv_store
from torch import nn

from max_pipelines.forward_context import ForwardContext
from max_pipelines.layers.linear import Linear
from max_pipelines.layers.norm import RMSNorm
from max_pipelines.layers.rotary import RotaryEmbedding


@dataclass(frozen=True)
class AttentionShape:
    """Head layout and attention options of one layer."""

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    scale: float
    qkv_bias: bool = False
    o_bias: bool = False
    sliding_window: int | None = None
    softcap: float | None = None


class PagedAttention(nn.Module):
    """Rotates this step's queries and keys and stores keys and values for layer `layer_idx` (one
    kernel), then attends over the cache.

    Float8 caches pass their per-layer scales to both kernels (stored as `x / scale`).
    """

    def __init__(self, layer_idx: int, shape: AttentionShape):
        super().__init__()
        self.layer_idx = layer_idx
        self.scale = shape.scale
        self.sliding_window = shape.sliding_window
        self.softcap = shape.softcap

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        positions: torch.Tensor,
        rotary: RotaryEmbedding,
        ctx: ForwardContext,
    ) -> torch.Tensor:
        md = ctx.attn_metadata
        cache = ctx.kv_cache
        k_cache, v_cache = cache.k_caches[self.layer_idx], cache.v_caches[self.layer_idx]
        k_scale = cache.k_scales[self.layer_idx] if cache.spec.is_fp8 else None
        v_scale = cache.v_scales[self.layer_idx] if cache.spec.is_fp8 else None
        q = rope_kv_store(
            q,
            k,
            v,
            positions,
            rotary.cos_sin_cache,
            True,
            k_cache,
            v_cache,
            md.slot_mapping,
            k_scale,
            v_scale,
            md.slots_valid,
            rotary.factors(positions, q),
        )
        return paged_attention(
            q,
            k_cache,
            v_cache,
            md.cu_seqlens_q,
            md.seq_lens,
            md.block_tables,
            self.scale,
            sliding_window=self.sliding_window,
            softcap=self.softcap,
            max_seqlen_q=md.max_seqlen_q,
            k_scale=k_scale,
            v_scale=v_scale,
            decode_plan=md.decode_plan,
        )


class SelfAttention(nn.Module):
    """Fused QKV projection, optional per-head q/k RMSNorm, RoPE, paged attention, output projection."""

    def __init__(
        self,
        layer_idx: int,
        shape: AttentionShape,
        rotary: RotaryEmbedding,
        qk_norm: type[RMSNorm] | None = None,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        self.num_heads = shape.num_heads
        self.num_kv_heads = shape.num_kv_heads
        self.head_dim = shape.head_dim
        q_size = shape.num_heads * shape.head_dim
        kv_size = shape.num_kv_heads * shape.head_dim
        self.qkv_proj = Linear(shape.hidden_size, [q_size, kv_size, kv_size], bias=shape.qkv_bias)
        self.o_proj = Linear(q_size, shape.hidden_size, bias=shape.o_bias)
        self.q_norm = qk_norm(shape.head_dim, norm_eps) if qk_norm else None
        self.k_norm = qk_norm(shape.head_dim, norm_eps) if qk_norm else None
        self.rotary = rotary
        self.attn = PagedAttention(layer_idx, shape)

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return self.o_proj(self.attend(positions, hidden, ctx))

    def attend(self, positions: torch.Tensor, hidden: torch.Tensor | PendingNorm, ctx: ForwardContext) -> torch.Tensor:
        """Everything before the output projection: its input `[T, Hq * D]`."""
        hq, hk, d = self.num_heads, self.num_kv_heads, self.head_dim
        qkv = self.qkv_proj(hidden).view(-1, hq + 2 * hk, d)
        q, k, v = qkv[:, :hq], qkv[:, hq : hq + hk], qkv[:, hq + hk :]
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return self.attn(q, k, v, positions, self.rotary, ctx).reshape(-1, hq * d)
