"""Paged attention over a ragged batch: the public op, its dispatch, and the PyTorch twin.

Request `i` owns queries `cu_seqlens_q[i]:cu_seqlens_q[i+1]`; they are the last tokens of its
`seq_lens[i]` tokens, whose K/V already sit in the paged cache through `block_tables[i]`. A query at
position `p` sees keys at positions `<= p` and, with a sliding window `w`, `> p - w`. Scores are
`scale * q.k`, soft-capped as `softcap * tanh(s / softcap)` when `softcap` is given. Float8 caches
hold K / `k_scale` and V / `v_scale` (per-tensor scales, default 1).
"""

import torch
import torch.nn.functional as F

from max_kernels.attention_decode import decode_attention
from max_kernels.attention_prefill import prefill_attention
from max_kernels.dispatch import use_triton
from max_kernels.fp8 import dequantize_fp8_ref, scale_tensor


def _gather(cache: torch.Tensor, blocks: torch.Tensor, length: int, scale, dtype) -> torch.Tensor:
    """`[..., n_blocks]` block ids -> `[..., length, Hk, D]` contiguous K or V in `dtype`."""
    pages = cache[blocks]
    x = pages.reshape(*blocks.shape[:-1], -1, *cache.shape[2:])[..., :length, :, :]
    if cache.dtype == torch.float8_e4m3fn:
        return dequantize_fp8_ref(x, 1.0 if scale is None else scale, dtype)
    return x.to(dtype)


def _attend(q, k, v, allowed, scale, softcap):
    """`q [B, Hq, M, D]`, `k/v [B, Hk, L, D]`, `allowed [B, 1, M, L]` -> `[B, Hq, M, D]`."""
    if softcap is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale, enable_gqa=True)
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale
    scores = softcap * torch.tanh(scores / softcap)
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    return (probs @ v.float()).to(q.dtype)


def _allowed(q_pos: torch.Tensor, k_pos: torch.Tensor, sliding_window: int | None) -> torch.Tensor:
    allowed = k_pos[..., None, :] <= q_pos[..., :, None]
    if sliding_window is not None:
        allowed &= k_pos[..., None, :] > q_pos[..., :, None] - sliding_window
    return allowed


def _decode_ref(q, k_cache, v_cache, seq_lens, block_tables, scale, sliding_window, softcap, k_scale, v_scale):
    """All requests at once, one query each, keys padded to the longest request."""
    page = k_cache.shape[1]
    longest = int(seq_lens.max())
    blocks = block_tables[:, : -(-longest // page)].long()
    k = _gather(k_cache, blocks, longest, k_scale, q.dtype).transpose(1, 2)
    v = _gather(v_cache, blocks, longest, v_scale, q.dtype).transpose(1, 2)
    k_pos = torch.arange(longest, device=q.device)[None, :]
    q_pos = (seq_lens.long() - 1)[:, None]
    allowed = _allowed(q_pos, k_pos, sliding_window) & (k_pos < seq_lens.long()[:, None])[:, None, :]
    out = _attend(q.unsqueeze(2), k, v, allowed.unsqueeze(1), scale, softcap)
    return out.squeeze(2)


def paged_attention_ref(
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
):
    out = torch.empty_like(q)
    starts = cu_seqlens_q.tolist()
    q_lens = torch.tensor([b - a for a, b in zip(starts[:-1], starts[1:])])
    decode = torch.nonzero(q_lens == 1).flatten()
    if len(decode) > 0:
        rows = cu_seqlens_q[:-1][decode.to(cu_seqlens_q.device)].long()
        dev_decode = decode.to(seq_lens.device)
        out[rows] = _decode_ref(
            q[rows],
            k_cache,
            v_cache,
            seq_lens[dev_decode],
            block_tables[dev_decode],
            scale,
            sliding_window,
            softcap,
            k_scale,
            v_scale,
        )
    page = k_cache.shape[1]
    for i in torch.nonzero(q_lens > 1).flatten().tolist():
        start, end, kv_len = starts[i], starts[i + 1], int(seq_lens[i])
        blocks = block_tables[i, : -(-kv_len // page)].long()
        k = _gather(k_cache, blocks, kv_len, k_scale, q.dtype).transpose(0, 1).unsqueeze(0)
        v = _gather(v_cache, blocks, kv_len, v_scale, q.dtype).transpose(0, 1).unsqueeze(0)
        q_pos = torch.arange(kv_len - (end - start), kv_len, device=q.device)
        allowed = _allowed(q_pos, torch.arange(kv_len, device=q.device), sliding_window)
        qi = q[start:end].transpose(0, 1).unsqueeze(0)
        out[start:end] = _attend(qi, k, v, allowed[None, None], scale, softcap)[0].transpose(0, 1)
    return out


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
) -> torch.Tensor:
    """`q [T, Hq, D]` against caches `[N, P, Hk, D]` -> `[T, Hq, D]`; see the module docstring.

    Pass `max_seqlen_q` on the GPU: without it the longest query run is read back from the device.
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
    )
