"""Self-attention over the paged KV cache."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from max_kernels import PendingNorm, paged_attention, qkv_rope_store, rope_kv_store
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
    """Layer `layer_idx`'s side of the paged KV cache: `store` rotates this step's queries and keys and
    writes keys and values (one kernel; at batch 1 also the QKV product, `project_and_store`), then
    `forward` attends over the cache.

    Float8 caches pass their per-layer scales to the kernels (stored as `x / scale`).
    """

    def __init__(self, layer_idx: int, shape: AttentionShape):
        super().__init__()
        self.layer_idx = layer_idx
        self.scale = shape.scale
        self.sliding_window = shape.sliding_window
        self.softcap = shape.softcap

    def _cache(self, ctx: ForwardContext):
        cache = ctx.kv_cache
        scales = (cache.k_scales[self.layer_idx], cache.v_scales[self.layer_idx]) if cache.spec.is_fp8 else (None, None)
        return cache.k_caches[self.layer_idx], cache.v_caches[self.layer_idx], *scales

    def store(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        positions: torch.Tensor,
        rotary: RotaryEmbedding,
        ctx: ForwardContext,
    ) -> torch.Tensor:
        """Rotate q and k, write the rotated k and v to the cache; returns the rotated q."""
        md = ctx.attn_metadata
        k_cache, v_cache, k_scale, v_scale = self._cache(ctx)
        return rope_kv_store(
            q, k, v, positions, rotary.cos_sin_cache, True, k_cache, v_cache, md.slot_mapping, k_scale, v_scale,
            md.slots_valid, rotary.factors(positions, q),
        )

    def project_and_store(
        self,
        x: torch.Tensor | PendingNorm,
        qkv_proj: Linear,
        heads: tuple[int, int],
        positions: torch.Tensor,
        rotary: RotaryEmbedding,
        ctx: ForwardContext,
    ) -> torch.Tensor | None:
        """`store` of `qkv_proj(x)` by the QKV product's own kernel (`qkv_rope_store`): a single token
        in a step where the fused batch-1 kernels run, float weights, full rotary; None elsewhere."""
        if qkv_proj.weight is None:
            return None
        k_cache, v_cache, k_scale, v_scale = self._cache(ctx)
        return qkv_rope_store(
            x, qkv_proj.weight, qkv_proj.bias, *heads, positions, rotary.cos_sin_cache, k_cache, v_cache,
            ctx.attn_metadata.slot_mapping, k_scale, v_scale,
        )

    def forward(self, q: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        md = ctx.attn_metadata
        k_cache, v_cache, k_scale, v_scale = self._cache(ctx)
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
        q = None
        if self.q_norm is None:
            q = self.attn.project_and_store(hidden, self.qkv_proj, (hq, hk), positions, self.rotary, ctx)
        if q is None:
            qkv = self.qkv_proj(hidden).view(-1, hq + 2 * hk, d)
            q, k, v = qkv[:, :hq], qkv[:, hq : hq + hk], qkv[:, hq + hk :]
            if self.q_norm is not None:
                q, k = self.q_norm(q), self.k_norm(k)
            q = self.attn.store(q, k, v, positions, self.rotary, ctx)
        return self.attn(q, ctx).reshape(-1, hq * d)
