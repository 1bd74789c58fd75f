"""Per-step batch description handed to a model's forward pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from max_kernels import DecodePlan
    from max_kvcache import PagedKVCache


@dataclass(frozen=True)
class AttentionMetadata:
    """Where a flat ragged batch of `T` tokens from `B` requests lives in the paged KV cache.

    Request `i` owns query tokens `cu_seqlens_q[i]:cu_seqlens_q[i+1]`, which are the last
    tokens of its `seq_lens[i]` tokens; its pages are `block_tables[i]`. Token `t` is stored
    at `slot_mapping[t] = block * page_size + offset` (negative: not stored).
    """

    slot_mapping: torch.Tensor  # [T] int64
    cu_seqlens_q: torch.Tensor  # [B + 1] int32
    seq_lens: torch.Tensor  # [B] int32
    block_tables: torch.Tensor  # [B, M] int32
    max_seqlen_q: int
    max_seqlen_k: int
    slots_valid: bool = False  # no slot is negative: the CPU store skips checking
    decode_plan: DecodePlan | None = None  # CPU decode-only steps: shared by all layers
    # [B] int32, steps with prompt tokens: each request's length as the host knows it (prompt and
    # generated tokens), which may pass `seq_lens` while a prompt is prefilled in chunks
    known_lens: torch.Tensor | None = None


@dataclass(frozen=True)
class ForwardContext:
    """What attention layers read besides their own activations."""

    attn_metadata: AttentionMetadata
    kv_cache: PagedKVCache
