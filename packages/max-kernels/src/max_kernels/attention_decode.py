"""Split-K (flash decoding) Triton kernels for paged attention with one query per request.

`_decode_split_kernel`, grid `(requests, KV heads, splits)`: each program takes every query head of
one KV group (the group's heads are the rows of its `tl.dot`), and one slice of the request's keys,
and writes a partial output and its log-sum-exp (base 2). `_decode_reduce_kernel`, grid
`(requests, query heads)`, merges the slices. The number of splits is chosen on the host from shapes
alone (no host sync), so the launch is the same for every step and can be captured in a CUDA graph.
"""

import torch

from max_kernels.attention_prefill import _softcap, dot_precision
from max_kernels.dispatch import import_triton

triton, tl = import_triton()

TARGET_PROGRAMS = 264  # about two waves on a GPU with 132 streaming multiprocessors


@triton.jit
def _decode_split_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    part_out_ptr,
    part_lse_ptr,
    cu_ptr,
    seq_lens_ptr,
    bt_ptr,
    k_scale_ptr,
    v_scale_ptr,
    scale,
    softcap,
    window,
    q_stride_t,
    q_stride_h,
    kc_stride_n,
    kc_stride_p,
    kc_stride_h,
    vc_stride_n,
    vc_stride_p,
    vc_stride_h,
    bt_stride,
    group,
    num_splits,
    PAGE_SIZE: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    HAS_KV_SCALE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    req = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    num_q_heads = group * tl.num_programs(1)
    q_start = tl.load(cu_ptr + req)
    has_query = tl.load(cu_ptr + req + 1) > q_start
    kv_len = tl.load(seq_lens_ptr + req)
    lo = 0
    if HAS_WINDOW:
        lo = tl.maximum(kv_len - window, 0)
    split_len = tl.cdiv(tl.cdiv(kv_len - lo, num_splits), BLOCK_N) * BLOCK_N
    start = lo + split * split_len
    end = tl.where(has_query, tl.minimum(start + split_len, kv_len), start)

    offs_g = tl.arange(0, BLOCK_G)
    offs_d = tl.arange(0, BLOCK_D)
    g_mask = offs_g < group
    d_mask = offs_d < HEAD_DIM
    heads = kv_head * group + offs_g
    q_row = tl.where(has_query, q_start, 0).to(tl.int64)
    q = tl.load(
        q_ptr + q_row * q_stride_t + heads[:, None] * q_stride_h + offs_d[None, :],
        mask=g_mask[:, None] & d_mask[None, :],
        other=0.0,
    )
    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    bt_row = bt_ptr + req.to(tl.int64) * bt_stride
    sm_scale = scale
    if HAS_KV_SCALE:
        sm_scale = scale * tl.load(k_scale_ptr)
    for tile in range(start, end, BLOCK_N):
        offs_n = tile + tl.arange(0, BLOCK_N)
        n_mask = offs_n < end
        block = tl.load(bt_row + offs_n // PAGE_SIZE, mask=n_mask, other=0).to(tl.int64)
        in_page = (offs_n % PAGE_SIZE).to(tl.int64)
        k_rows = block * kc_stride_n + in_page * kc_stride_p + kv_head * kc_stride_h
        v_rows = block * vc_stride_n + in_page * vc_stride_p + kv_head * vc_stride_h
        k = tl.load(k_cache_ptr + k_rows[None, :] + offs_d[:, None], mask=n_mask[None, :] & d_mask[:, None], other=0.0)
        s = tl.dot(q, k.to(q.dtype), input_precision=DOT_PRECISION) * sm_scale
        if HAS_SOFTCAP:
            s = _softcap(s, softcap)
        s = tl.where(n_mask[None, :], s * 1.4426950408889634, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_cache_ptr + v_rows[:, None] + offs_d[None, :], mask=n_mask[:, None] & d_mask[None, :], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(q.dtype), v.to(q.dtype), input_precision=DOT_PRECISION)
        m_i = m_new
    lse = tl.where(l_i > 0, m_i + tl.log2(tl.where(l_i > 0, l_i, 1.0)), float("-inf"))
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    if HAS_KV_SCALE:
        out = out * tl.load(v_scale_ptr)
    part = (req * num_q_heads + heads).to(tl.int64) * num_splits + split
    tl.store(part_out_ptr + part[:, None] * BLOCK_D + offs_d[None, :], out, mask=g_mask[:, None])
    tl.store(part_lse_ptr + part, lse, mask=g_mask)


@triton.jit
def _decode_reduce_kernel(
    part_out_ptr,
    part_lse_ptr,
    out_ptr,
    cu_ptr,
    o_stride_t,
    o_stride_h,
    num_splits,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    req = tl.program_id(0)
    head = tl.program_id(1)
    q_start = tl.load(cu_ptr + req)
    if tl.load(cu_ptr + req + 1) > q_start:
        offs_s = tl.arange(0, BLOCK_S)
        offs_d = tl.arange(0, BLOCK_D)
        base = (req * tl.num_programs(1) + head).to(tl.int64) * num_splits
        lse = tl.load(part_lse_ptr + base + offs_s, mask=offs_s < num_splits, other=float("-inf"))
        m = tl.max(lse, axis=0)
        w = tl.exp2(lse - m)
        parts = tl.load(
            part_out_ptr + (base + offs_s)[:, None] * BLOCK_D + offs_d[None, :],
            mask=(offs_s < num_splits)[:, None],
            other=0.0,
        )
        out = tl.sum(parts * w[:, None], axis=0) / tl.sum(w, axis=0)
        tl.store(
            out_ptr + q_start.to(tl.int64) * o_stride_t + head * o_stride_h + offs_d,
            out.to(out_ptr.dtype.element_ty),
            mask=offs_d < HEAD_DIM,
        )


def choose_num_splits(num_requests: int, num_kv_heads: int, max_kv_len: int, block_n: int) -> int:
    """Enough programs to fill the GPU, but never a split shorter than one key tile."""
    by_occupancy = triton.cdiv(TARGET_PROGRAMS, max(num_requests * num_kv_heads, 1))
    return max(1, min(by_occupancy, triton.cdiv(max_kv_len, block_n), 64))


def decode_attention(
    q,
    k_cache,
    v_cache,
    out,
    cu_seqlens_q,
    seq_lens,
    block_tables,
    scale,
    sliding_window,
    softcap,
    kv_scales,
    num_splits=None,
    block_n=None,
):
    """One query per request (rows `cu_seqlens_q[i]`); writes `out`."""
    _, hq, d = q.shape
    hk = k_cache.shape[2]
    num_requests = seq_lens.shape[0]
    if num_requests == 0:
        return out
    group = hq // hk
    block_d = max(triton.next_power_of_2(d), 16)
    block_n = block_n or 64
    max_kv_len = block_tables.shape[1] * k_cache.shape[1]
    if sliding_window is not None:
        max_kv_len = min(max_kv_len, sliding_window)
    num_splits = num_splits or choose_num_splits(num_requests, hk, max_kv_len, block_n)
    part_out = torch.empty(num_requests, hq, num_splits, block_d, dtype=torch.float32, device=q.device)
    part_lse = torch.empty(num_requests, hq, num_splits, dtype=torch.float32, device=q.device)
    _decode_split_kernel[(num_requests, hk, num_splits)](
        q,
        k_cache,
        v_cache,
        part_out,
        part_lse,
        cu_seqlens_q,
        seq_lens,
        block_tables,
        seq_lens if kv_scales is None else kv_scales[0],
        seq_lens if kv_scales is None else kv_scales[1],
        scale,
        softcap or 1.0,
        sliding_window or 0,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        v_cache.stride(0),
        v_cache.stride(1),
        v_cache.stride(2),
        block_tables.stride(0),
        group,
        num_splits,
        PAGE_SIZE=k_cache.shape[1],
        HEAD_DIM=d,
        BLOCK_D=block_d,
        BLOCK_G=max(triton.next_power_of_2(group), 16),
        BLOCK_N=block_n,
        HAS_WINDOW=sliding_window is not None,
        HAS_SOFTCAP=softcap is not None,
        HAS_KV_SCALE=kv_scales is not None,
        DOT_PRECISION=dot_precision(q.dtype),
        num_warps=4,
        num_stages=2,
    )
    _decode_reduce_kernel[(num_requests, hq)](
        part_out,
        part_lse,
        out,
        cu_seqlens_q,
        out.stride(0),
        out.stride(1),
        num_splits,
        HEAD_DIM=d,
        BLOCK_D=block_d,
        BLOCK_S=max(triton.next_power_of_2(num_splits), 2),
        num_warps=4,
    )
    return out
