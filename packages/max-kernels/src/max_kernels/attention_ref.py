"""The PyTorch twin of paged attention, which is also the CPU engine's attention.

Queries are folded by KV group: the `G = Hq / Hk` query heads sharing a KV head become `G * M` rows
against that head's keys, so one `scaled_dot_product_attention` call serves grouped-query attention
without repeating K/V. Decode requests (one query each) run as one padded batch; each request with
several queries (prefill, chunked prefill on top of a cached prefix) runs on its own.
"""

import torch
import torch.nn.functional as F

from max_kernels.fp8 import dequantize_fp8_ref


def _gather(cache: torch.Tensor, block_tables: torch.Tensor, length: int, scale, dtype) -> torch.Tensor:
    """`block_tables [B, n]` -> `[B, Hk, length, D]` keys or values in `dtype`."""
    pages = cache.index_select(0, block_tables.reshape(-1).long())
    x = pages.view(block_tables.shape[0], -1, *cache.shape[2:])[:, :length].transpose(1, 2)
    if cache.dtype == torch.float8_e4m3fn:
        return dequantize_fp8_ref(x, 1.0 if scale is None else scale, dtype)
    return x.to(dtype)


def _attend(q, k, v, allowed, scale, softcap):
    """`q [B, Hk, R, D]` rows against `k/v [B, Hk, L, D]`; `allowed` broadcasts to `[B, Hk, R, L]` (None: all)."""
    if softcap is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale
    scores = softcap * torch.tanh(scores / softcap)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return (scores.softmax(dim=-1) @ v.float()).to(q.dtype)


def _decode(q, k_cache, v_cache, seq_lens, block_tables, scale, window, softcap, k_scale, v_scale):
    """`q [B, Hq, D]`, one query per request at position `seq_lens[i] - 1`."""
    b, hq, d = q.shape
    hk, page = k_cache.shape[2], k_cache.shape[1]
    lens = seq_lens.tolist()
    longest = max(lens)
    tables = block_tables[:, : -(-longest // page)]
    k = _gather(k_cache, tables, longest, k_scale, q.dtype)
    v = _gather(v_cache, tables, longest, v_scale, q.dtype)
    allowed = None
    if min(lens) < longest or (window is not None and longest > window):
        k_pos = torch.arange(longest, device=q.device)
        lens_t = seq_lens.to(q.device, torch.long)[:, None]
        allowed = k_pos < lens_t
        if window is not None:
            allowed &= k_pos >= lens_t - window
        allowed = allowed[:, None, None, :]
    out = _attend(q.view(b, hk, hq // hk, d), k, v, allowed, scale, softcap)
    return out.reshape(b, hq, d)


def _prefill(q, k_cache, v_cache, kv_len, block_table, scale, window, softcap, k_scale, v_scale):
    """`q [M, Hq, D]`: the last `M` of a request's `kv_len` tokens."""
    m, hq, d = q.shape
    hk, page = k_cache.shape[2], k_cache.shape[1]
    group = hq // hk
    table = block_table[None, : -(-kv_len // page)]
    k = _gather(k_cache, table, kv_len, k_scale, q.dtype)
    v = _gather(v_cache, table, kv_len, v_scale, q.dtype)
    q_pos = torch.arange(kv_len - m, kv_len, device=q.device)[:, None]
    k_pos = torch.arange(kv_len, device=q.device)
    allowed = k_pos <= q_pos
    if window is not None:
        allowed &= k_pos > q_pos - window
    rows = q.view(m, hk, group, d).permute(1, 2, 0, 3).reshape(1, hk, group * m, d)
    out = _attend(rows, k, v, allowed.repeat(group, 1), scale, softcap)
    return out.view(hk, group, m, d).permute(2, 0, 1, 3).reshape(m, hq, d)


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
    q_lens = [end - start for start, end in zip(starts[:-1], starts[1:])]
    decode = [i for i, n in enumerate(q_lens) if n == 1]
    args = (scale, sliding_window, softcap, k_scale, v_scale)
    if decode and len(decode) == len(q_lens):
        out[:] = _decode(q, k_cache, v_cache, seq_lens, block_tables, *args)
    elif decode:
        idx = torch.tensor(decode, device=seq_lens.device)
        rows = torch.tensor([starts[i] for i in decode], device=q.device)
        out[rows] = _decode(q[rows], k_cache, v_cache, seq_lens[idx], block_tables[idx.to(block_tables.device)], *args)
    lens = seq_lens.tolist()
    for i, n in enumerate(q_lens):
        if n > 1:
            start, end = starts[i], starts[i + 1]
            out[start:end] = _prefill(q[start:end], k_cache, v_cache, lens[i], block_tables[i], *args)
    return out
