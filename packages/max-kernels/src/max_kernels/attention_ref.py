"""The PyTorch twin of paged attention, which is also the CPU engine's attention.

Queries are folded by KV group: the `G = Hq / Hk` query heads sharing a KV head become `G * M` rows
against that head's keys, so one `scaled_dot_product_attention` call serves grouped-query attention
without repeating K/V. Decode requests (one query each) run as one padded batch; each request with
several queries (prefill, chunked prefill on top of a cached prefix) runs on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from max_kernels.fp8 import dequantize_fp8_ref


@dataclass(eq=False)
class DecodePlan:
    """What the decode attention of every layer shares in one step, worked out once from host data.

    `pages` is what to read from each layer's cache: a slice when there is one request whose pages
    are consecutive (a view, no copy), else the flat page ids `[B * n]`. `allowed` masks keys past
    each request's length (None when all requests have the same length).
    """

    longest: int
    pages: slice | torch.Tensor
    lengths: torch.Tensor  # [B, 1] int64
    allowed: torch.Tensor | None
    _window_masks: dict = field(default_factory=dict)

    @classmethod
    def build(cls, seq_lens: list[int], block_ids: list[list[int]], page_size: int, device) -> DecodePlan:
        longest = max(seq_lens)
        n = -(-longest // page_size)
        first = block_ids[0][0] if block_ids[0] else 0
        if len(block_ids) == 1 and block_ids[0][:n] == list(range(first, first + n)):
            pages: slice | torch.Tensor = slice(first, first + n)
        else:
            pages = torch.tensor([(ids + [0] * n)[:n] for ids in block_ids], dtype=torch.long, device=device).view(-1)
        lengths = torch.tensor(seq_lens, dtype=torch.long, device=device)[:, None]
        allowed = None
        if min(seq_lens) < longest:
            allowed = (torch.arange(longest, device=device) < lengths)[:, None, None, :]
        return cls(longest, pages, lengths, allowed)

    @classmethod
    def of(cls, seq_lens: torch.Tensor, block_tables: torch.Tensor, page_size: int) -> DecodePlan:
        """The plan read back from device tensors (for callers that pass none)."""
        return cls.build(seq_lens.tolist(), block_tables.tolist(), page_size, seq_lens.device)

    def mask(self, window: int | None) -> torch.Tensor | None:
        """`allowed`, narrowed to the last `window` keys of each request."""
        if window is None or self.longest <= window:
            return self.allowed
        if window not in self._window_masks:
            k_pos = torch.arange(self.longest, device=self.lengths.device)
            inside = (k_pos >= self.lengths - window)[:, None, None, :]
            self._window_masks[window] = inside if self.allowed is None else inside & self.allowed
        return self._window_masks[window]

    def gather(self, cache: torch.Tensor, scale, dtype) -> torch.Tensor:
        """`[B, Hk, longest, D]` keys or values of one layer in `dtype`."""
        pages = cache[self.pages] if isinstance(self.pages, slice) else cache.index_select(0, self.pages)
        x = pages.view(self.lengths.shape[0], -1, *cache.shape[2:])[:, : self.longest].transpose(1, 2)
        return _to_dtype(x, scale, dtype)


def _to_dtype(x: torch.Tensor, scale, dtype) -> torch.Tensor:
    if x.dtype == torch.float8_e4m3fn:
        return dequantize_fp8_ref(x, 1.0 if scale is None else scale, dtype)
    return x if x.dtype == dtype else x.to(dtype)


def _gather(cache: torch.Tensor, block_tables: torch.Tensor, length: int, scale, dtype) -> torch.Tensor:
    """`block_tables [B, n]` -> `[B, Hk, length, D]` keys or values in `dtype`."""
    pages = cache.index_select(0, block_tables.reshape(-1).long())
    x = pages.view(block_tables.shape[0], -1, *cache.shape[2:])[:, :length].transpose(1, 2)
    return _to_dtype(x, scale, dtype)


def _attend(q, k, v, allowed, scale, softcap):
    """`q [B, Hk, R, D]` rows against `k/v [B, Hk, L, D]`; `allowed` broadcasts to `[B, Hk, R, L]` (None: all)."""
    if softcap is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale
    scores = softcap * torch.tanh(scores / softcap)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return (scores.softmax(dim=-1) @ v.float()).to(q.dtype)


def _decode(q, k_cache, v_cache, plan: DecodePlan, scale, window, softcap, k_scale, v_scale):
    """`q [B, Hq, D]`, one query per request at position `seq_lens[i] - 1`."""
    b, hq, d = q.shape
    hk = k_cache.shape[2]
    k = plan.gather(k_cache, k_scale, q.dtype)
    v = plan.gather(v_cache, v_scale, q.dtype)
    out = _attend(q.view(b, hk, hq // hk, d), k, v, plan.mask(window), scale, softcap)
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
    decode_plan=None,
):
    args = (scale, sliding_window, softcap, k_scale, v_scale)
    page = k_cache.shape[1]
    if max_seqlen_q == 1:  # a decode-only batch: no per-request bookkeeping
        plan = decode_plan or DecodePlan.of(seq_lens, block_tables, page)
        return _decode(q, k_cache, v_cache, plan, *args)
    out = torch.empty_like(q)
    starts = cu_seqlens_q.tolist()
    q_lens = [end - start for start, end in zip(starts[:-1], starts[1:])]
    decode = [i for i, n in enumerate(q_lens) if n == 1]
    if decode and len(decode) == len(q_lens):
        out[:] = _decode(q, k_cache, v_cache, DecodePlan.of(seq_lens, block_tables, page), *args)
    elif decode:
        idx = torch.tensor(decode, device=seq_lens.device)
        rows = torch.tensor([starts[i] for i in decode], device=q.device)
        plan = DecodePlan.of(seq_lens[idx], block_tables[idx.to(block_tables.device)], page)
        out[rows] = _decode(q[rows], k_cache, v_cache, plan, *args)
    lens = seq_lens.tolist()
    for i, n in enumerate(q_lens):
        if n > 1:
            start, end = starts[i], starts[i + 1]
            out[start:end] = _prefill(q[start:end], k_cache, v_cache, lens[i], block_tables[i], *args)
    return out
