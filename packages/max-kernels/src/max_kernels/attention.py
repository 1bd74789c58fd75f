"""Paged attention over a ragged batch: the public op and its dispatch (twin in attention_ref.py).

Request `i` owns queries `cu_seqlens_q[i]:cu_seqlens_q[i+1]`; they are the last tokens of its
`seq_lens[i]` tokens, whose K/V already sit in the paged cache through `block_tables[i]`. A query at
position `p` sees keys at positions `<= p` and, with a sliding window `w`, `> p - w`. Scores are
`scale * q.k`, soft-capped as `softcap * tanh(s / softcap)` when `softcap` is given. Float8 caches
hold K / `k_scale` and V / `v_scale` (per-tensor scales, default 1).
"""

import torch

from max_kernels.attention_decode import decode_attention
from max_kernels.attention_prefill import prefill_attention
from max_kernels.attention_ref import DecodePlan, paged_attention_ref
from max_kernels.dispatch import use_triton
from max_kernels.fp8 import scale_tensor


def paged_attention_triton(
    q,
    k_cache,
    v_cache,
    cu_seqlens_q,
    seq_lens,
    block_tables,
    scale,
    *,
    sliding_window=None,
    softcap=None,
    max_seqlen_q=None,
    k_scale=None,
    v_scale=None,
    decode_plan=None,
):
    assert q.stride(-1) == 1 and k_cache.stride(-1) == 1 and v_cache.stride(-1) == 1, "features must be contiguous"
    out = torch.empty_like(q)
    if max_seqlen_q is None:
        max_seqlen_q = int((cu_seqlens_q[1:] - cu_seqlens_q[:-1]).max()) if seq_lens.numel() else 0
    kv_scales = None
    if k_cache.dtype == torch.float8_e4m3fn:
        kv_scales = tuple(scale_tensor(1.0 if x is None else x, q.device) for x in (k_scale, v_scale))
    args = (q, k_cache, v_cache, out, cu_seqlens_q, seq_lens, block_tables, scale, sliding_window, softcap, kv_scales)
    if max_seqlen_q <= 1:
        return decode_attention(*args)
    return prefill_attention(*args, max_seqlen_q)


def paged_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    seq_lens: torch.Tensor,
    block_tables: torch.Tensor,
    scale: float,
    *,
    sliding_window: int | None = None,
    softcap: float | None = None,
    max_seqlen_q: int | None = None,
    k_scale: float | torch.Tensor | None = None,
    v_scale: float | torch.Tensor | None = None,
    decode_plan: DecodePlan | None = None,
) -> torch.Tensor:
    """`q [T, Hq, D]` against caches `[N, P, Hk, D]` -> `[T, Hq, D]`; see the module docstring.

    Pass `max_seqlen_q` on the GPU: without it the longest query run is read back from the device.
    On the CPU, a decode-only batch (`max_seqlen_q == 1`) may pass the step's `DecodePlan`, built
    once for all layers from host data; the GPU kernels do not need one.
    """
    fn = paged_attention_triton if use_triton(q) else paged_attention_ref
    return fn(
        q,
        k_cache,
        v_cache,
        cu_seqlens_q,
        seq_lens,
        block_tables,
        scale,
        sliding_window=sliding_window,
        softcap=softcap,
        max_seqlen_q=max_seqlen_q,
        k_scale=k_scale,
        v_scale=v_scale,
        decode_plan=decode_plan,
    )
