"""Flash-attention style Triton kernel for paged attention over a ragged batch (prefill and mixed).

Grid `(query blocks, requests, query heads)`. Each program holds `BLOCK_M` queries of one head and
walks the request's keys in tiles of `BLOCK_N`, looking up each key's page in the block table (any
page size works), with an online softmax in float32 (base 2).
"""

import torch

from max_kernels.dispatch import import_triton

triton, tl = import_triton()


@triton.jit
def _softcap(s, softcap):
    """`softcap * tanh(s / softcap)`, tanh written with exp so it is stable for large |s|."""
    x = s / softcap
    e = tl.exp(-2.0 * tl.abs(x))
    return softcap * tl.where(x >= 0, 1.0, -1.0) * (1.0 - e) / (1.0 + e)


@triton.jit
def _prefill_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    out_ptr,
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
    o_stride_t,
    o_stride_h,
    kc_stride_n,
    kc_stride_p,
    kc_stride_h,
    vc_stride_n,
    vc_stride_p,
    vc_stride_h,
    bt_stride,
    group,
    PAGE_SIZE: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    HAS_KV_SCALE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    m_block = tl.program_id(0)
    req = tl.program_id(1)
    head = tl.program_id(2)
    q_start = tl.load(cu_ptr + req)
    q_len = tl.load(cu_ptr + req + 1) - q_start
    if m_block * BLOCK_M < q_len:
        kv_len = tl.load(seq_lens_ptr + req)
        kv_head = head // group
        offs_m = m_block * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        m_mask = offs_m < q_len
        d_mask = offs_d < HEAD_DIM
        q_rows = (q_start + offs_m).to(tl.int64)
        q = tl.load(
            q_ptr + q_rows[:, None] * q_stride_t + head * q_stride_h + offs_d[None, :],
            mask=m_mask[:, None] & d_mask[None, :],
            other=0.0,
        )
        q_pos = kv_len - q_len + offs_m
        hi = tl.minimum(kv_len, kv_len - q_len + (m_block + 1) * BLOCK_M)
        lo = 0
        if HAS_WINDOW:
            lo = tl.maximum(kv_len - q_len + m_block * BLOCK_M - window + 1, 0)
            lo = (lo // BLOCK_N) * BLOCK_N
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        sm_scale = scale
        if HAS_KV_SCALE:
            sm_scale = scale * tl.load(k_scale_ptr)
        qk_scale = sm_scale * 1.4426950408889634
        bt_row = bt_ptr + req.to(tl.int64) * bt_stride
        for start in range(lo, hi, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            n_mask = offs_n < hi
            block = tl.load(bt_row + offs_n // PAGE_SIZE, mask=n_mask, other=0).to(tl.int64)
            in_page = (offs_n % PAGE_SIZE).to(tl.int64)
            k_rows = block * kc_stride_n + in_page * kc_stride_p + kv_head * kc_stride_h
            v_rows = block * vc_stride_n + in_page * vc_stride_p + kv_head * vc_stride_h
            k = tl.load(
                k_cache_ptr + k_rows[None, :] + offs_d[:, None], mask=n_mask[None, :] & d_mask[:, None], other=0.0
            )
            s = tl.dot(q, k.to(q.dtype), input_precision=DOT_PRECISION)
            if HAS_SOFTCAP:
                s = _softcap(s * sm_scale, softcap) * 1.4426950408889634
            else:
                s = s * qk_scale
            allowed = n_mask[None, :] & (offs_n[None, :] <= q_pos[:, None])
            if HAS_WINDOW:
                allowed = allowed & (offs_n[None, :] > q_pos[:, None] - window)
            s = tl.where(allowed, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.exp2(s - m_safe[:, None])
            alpha = tl.exp2(m_i - m_safe)
            l_i = l_i * alpha + tl.sum(p, axis=1)
            v = tl.load(
                v_cache_ptr + v_rows[:, None] + offs_d[None, :], mask=n_mask[:, None] & d_mask[None, :], other=0.0
            )
            acc = acc * alpha[:, None] + tl.dot(p.to(q.dtype), v.to(q.dtype), input_precision=DOT_PRECISION)
            m_i = m_new
        out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
        if HAS_KV_SCALE:
            out = out * tl.load(v_scale_ptr)
        tl.store(
            out_ptr + q_rows[:, None] * o_stride_t + head * o_stride_h + offs_d[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=m_mask[:, None] & d_mask[None, :],
        )


def dot_precision(dtype: torch.dtype) -> str | None:
    """Float32 inputs keep full precision in `tl.dot` (no TF32); others use the default."""
    return "ieee" if dtype == torch.float32 else None


def prefill_attention(
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
    max_seqlen_q,
    block_m=None,
    block_n=None,
):
    """Launch the prefill kernel over every request (decode rows included); writes `out`."""
    _, hq, d = q.shape
    hk = k_cache.shape[2]
    num_requests = seq_lens.shape[0]
    block_d = max(triton.next_power_of_2(d), 16)
    block_m = block_m or (64 if d <= 128 else 32)
    block_n = block_n or (64 if d <= 128 else 32)
    if num_requests == 0 or max_seqlen_q == 0:
        return out
    grid = (triton.cdiv(max_seqlen_q, block_m), num_requests, hq)
    _prefill_kernel[grid](
        q,
        k_cache,
        v_cache,
        out,
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
        out.stride(0),
        out.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        v_cache.stride(0),
        v_cache.stride(1),
        v_cache.stride(2),
        block_tables.stride(0),
        hq // hk,
        PAGE_SIZE=k_cache.shape[1],
        HEAD_DIM=d,
        BLOCK_D=block_d,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        HAS_WINDOW=sliding_window is not None,
        HAS_SOFTCAP=softcap is not None,
        HAS_KV_SCALE=kv_scales is not None,
        DOT_PRECISION=dot_precision(q.dtype),
        num_warps=4,
        num_stages=2,
    )
    return out
