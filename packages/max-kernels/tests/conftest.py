"""Shared fixtures for kernel tests; selects Triton's CPU interpreter before any kernel is defined."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


def _paged_batch(q_lens, kv_lens, hq, hk, d, page, dtype=torch.float32, seed=0, spare_blocks=3):
    """Random queries and a paged cache holding each request's `kv_lens[i]` tokens.

    Blocks are handed out in shuffled order (block 0 stays null), block tables are padded with 0,
    and unused cache slots hold garbage, so a kernel reading the wrong slot fails the comparison.
    """
    g = torch.Generator().manual_seed(seed)
    needed = [-(-n // page) for n in kv_lens]
    num_blocks = 1 + sum(needed) + spare_blocks
    order = (torch.randperm(num_blocks - 1, generator=g) + 1).tolist()
    width = max(needed + [1]) + 1
    block_tables = torch.zeros(len(kv_lens), width, dtype=torch.int32)
    for i, n in enumerate(needed):
        block_tables[i, :n] = torch.tensor(order[:n], dtype=torch.int32)
        order = order[n:]
    k_cache = torch.randn(num_blocks, page, hk, d, generator=g).to(dtype)
    v_cache = torch.randn(num_blocks, page, hk, d, generator=g).to(dtype)
    q = torch.randn(sum(q_lens), hq, d, generator=g).to(dtype)
    cu = torch.tensor([0] + list(q_lens), dtype=torch.int32).cumsum(0).to(torch.int32)
    seq_lens = torch.tensor(list(kv_lens), dtype=torch.int32)
    return q, k_cache, v_cache, cu, seq_lens, block_tables


def _attention_f64(q, k_cache, v_cache, cu, seq_lens, block_tables, scale, sliding_window=None, softcap=None):
    """Plain float64 attention, one request and one head at a time, slots looked up per token."""
    _, page, hk, d = k_cache.shape
    hq = q.shape[1]
    out = torch.zeros(q.shape, dtype=torch.float64)
    flat_k = k_cache.reshape(-1, hk, d).double()
    flat_v = v_cache.reshape(-1, hk, d).double()
    for i in range(len(seq_lens)):
        start, end, n = int(cu[i]), int(cu[i + 1]), int(seq_lens[i])
        if end == start:
            continue
        k_pos = torch.arange(n)
        slots = block_tables[i, k_pos // page].long() * page + k_pos % page
        q_pos = torch.arange(n - (end - start), n)
        allowed = k_pos[None, :] <= q_pos[:, None]
        if sliding_window is not None:
            allowed &= k_pos[None, :] > q_pos[:, None] - sliding_window
        for h in range(hq):
            kh, vh = flat_k[slots, h * hk // hq], flat_v[slots, h * hk // hq]
            scores = q[start:end, h].double() @ kh.T * scale
            if softcap is not None:
                scores = softcap * torch.tanh(scores / softcap)
            scores = scores.masked_fill(~allowed, float("-inf"))
            out[start:end, h] = scores.softmax(-1) @ vh
    return out


@pytest.fixture
def paged_batch():
    return _paged_batch


@pytest.fixture
def attention_f64():
    return _attention_f64
