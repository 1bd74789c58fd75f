"""RoPE and the KV cache write in one kernel: rotate q and k by their positions, return the rotated q,
and write the rotated k and the unchanged v into the paged cache.

A decode step otherwise launches two kernels per layer for a few kilobytes (`rotate`, then
`store_kvcache`); the rotated k is never needed outside the cache, since attention reads its keys
from there. Same layouts and rules as the two ops it replaces (see rotary.py and kv_store.py): a
negative slot skips the cache write (q is still rotated); float8 caches store `x / scale`.
"""

import torch

from max_kernels.dispatch import import_triton, use_triton
from max_kernels.fp8 import cache_scales, cache_value
from max_kernels.kv_store import store_kvcache_ref
from max_kernels.rotary import cos_sin_row, rotate, rotate_heads

triton, tl = import_triton()


@triton.jit
def _rope_kv_store_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    q_out_ptr,
    k_cache_ptr,
    v_cache_ptr,
    pos_ptr,
    cos_sin_ptr,
    slot_ptr,
    k_scale_ptr,
    v_scale_ptr,
    n_q_heads,
    n_kv_heads,
    q_stride_t,
    q_stride_h,
    k_stride_t,
    k_stride_h,
    v_stride_t,
    v_stride_h,
    qo_stride_t,
    qo_stride_h,
    kc_stride_n,
    kc_stride_p,
    kc_stride_h,
    vc_stride_n,
    vc_stride_p,
    vc_stride_h,
    cos_sin_stride,
    page_size,
    head_dim,
    HALF: tl.constexpr,
    NEOX: tl.constexpr,
    FP8: tl.constexpr,
    BLOCK_HQ: tl.constexpr,
    BLOCK_HK: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    """One token per program."""
    t = tl.program_id(0).to(tl.int64)
    cos, sin = cos_sin_row(cos_sin_ptr, tl.load(pos_ptr + t).to(tl.int64) * cos_sin_stride, HALF, BLOCK_R)
    rotate_heads(
        q_ptr + t * q_stride_t, q_stride_h, q_out_ptr + t * qo_stride_t, qo_stride_h, n_q_heads, cos, sin,
        k_scale_ptr, head_dim, HALF, NEOX, False, BLOCK_HQ, BLOCK_R, BLOCK_D,
    )
    slot = tl.load(slot_ptr + t).to(tl.int64)
    if slot >= 0:
        block, offset = slot // page_size, slot % page_size
        k_dst = k_cache_ptr + block * kc_stride_n + offset * kc_stride_p
        rotate_heads(
            k_ptr + t * k_stride_t, k_stride_h, k_dst, kc_stride_h, n_kv_heads, cos, sin,
            k_scale_ptr, head_dim, HALF, NEOX, FP8, BLOCK_HK, BLOCK_R, BLOCK_D,
        )
        heads = tl.arange(0, BLOCK_HK)[:, None]
        d = tl.arange(0, BLOCK_V)[None, :]
        mask = (heads < n_kv_heads) & (d < head_dim)
        v = tl.load(v_ptr + t * v_stride_t + heads * v_stride_h + d, mask=mask)
        v_dst = v_cache_ptr + block * vc_stride_n + offset * vc_stride_p + heads * vc_stride_h + d
        tl.store(v_dst, cache_value(v, v_scale_ptr, FP8).to(v_cache_ptr.dtype.element_ty), mask=mask)


def rope_kv_store_triton(q, k, v, positions, cos_sin_cache, neox, k_cache, v_cache, slot_mapping, k_scale, v_scale):
    t, hq, d = q.shape
    hk = k.shape[1]
    q_out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    if t == 0:
        return q_out
    q, k, v = (x if x.stride(2) == 1 else x.contiguous() for x in (q, k, v))
    assert k_cache[0, 0, 0].is_contiguous() and v_cache[0, 0, 0].is_contiguous(), "cache heads must be contiguous"
    half = cos_sin_cache.shape[1] // 2
    fp8 = k_cache.dtype == torch.float8_e4m3fn
    k_scale_t, v_scale_t = cache_scales(k_cache, k_scale, v_scale, slot_mapping)
    _rope_kv_store_kernel[(t,)](
        q, k, v, q_out, k_cache, v_cache, positions, cos_sin_cache, slot_mapping, k_scale_t, v_scale_t,
        hq, hk,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        q_out.stride(0), q_out.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        cos_sin_cache.stride(0), k_cache.shape[1], d,
        HALF=half,
        NEOX=neox,
        FP8=fp8,
        BLOCK_HQ=triton.next_power_of_2(hq),
        BLOCK_HK=triton.next_power_of_2(hk),
        BLOCK_R=triton.next_power_of_2(half),
        BLOCK_D=triton.next_power_of_2(d - 2 * half) if d > 2 * half else 0,
        BLOCK_V=triton.next_power_of_2(d),
        num_warps=4,
    )
    return q_out


def rope_kv_store_ref(
    q, k, v, positions, cos_sin_cache, neox, k_cache, v_cache, slot_mapping, k_scale, v_scale,
    slots_valid=False, factors=None,
):
    q_out = rotate(q, positions, cos_sin_cache, neox, factors)
    k_rot = rotate(k, positions, cos_sin_cache, neox, factors)
    store_kvcache_ref(k_rot, v, k_cache, v_cache, slot_mapping, k_scale, v_scale, slots_valid)
    return q_out


def rope_kv_store(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    positions: torch.Tensor,
    cos_sin_cache: torch.Tensor,
    neox: bool,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    k_scale: float | torch.Tensor | None = None,
    v_scale: float | torch.Tensor | None = None,
    slots_valid: bool = False,
    factors=None,
) -> torch.Tensor:
    """Rotate `q [T, Hq, D]` and `k [T, Hk, D]` by the table rows `positions [T]`, write the rotated
    k and `v [T, Hk, D]` into `k_cache/v_cache [N, P, Hk, D]` at `slot_mapping [T]`; return rotated q.

    `slots_valid` and `factors` (precomputed `rope_factors_ref`) only speed up the PyTorch twin."""
    if use_triton(q):
        return rope_kv_store_triton(q, k, v, positions, cos_sin_cache, neox, k_cache, v_cache, slot_mapping, k_scale, v_scale)
    return rope_kv_store_ref(
        q, k, v, positions, cos_sin_cache, neox, k_cache, v_cache, slot_mapping, k_scale, v_scale, slots_valid, factors
    )
