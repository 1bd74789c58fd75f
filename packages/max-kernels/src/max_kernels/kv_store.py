"""Write the K/V of a flat batch of tokens into the paged cache through a slot mapping.

Caches are `[N, P, Hk, D]`; token `t` goes to slot `slot_mapping[t] = block * P + offset`, and a
negative slot (a padding token, or a token whose KV is already cached) is skipped. Float8 caches
store `x / scale` (per-tensor `k_scale`, `v_scale`, default 1), as `quantize_fp8` does.
"""

import torch

from max_kernels.dispatch import import_triton, use_triton
from max_kernels.fp8 import cache_scales, cache_value, quantize_fp8_ref

triton, tl = import_triton()


@triton.jit
def _store_kvcache_kernel(
    k_ptr,
    v_ptr,
    k_cache_ptr,
    v_cache_ptr,
    slot_ptr,
    k_scale_ptr,
    v_scale_ptr,
    k_stride,
    v_stride,
    kc_block_stride,
    kc_page_stride,
    vc_block_stride,
    vc_page_stride,
    page_size,
    row_size,
    FP8: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Grid (tokens, row chunks): one token's `Hk * D` contiguous features per program."""
    t = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_ptr + t).to(tl.int64)
    if slot >= 0:
        block, offset = slot // page_size, slot % page_size
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < row_size
        k = tl.load(k_ptr + t * k_stride + cols, mask=mask)
        v = tl.load(v_ptr + t * v_stride + cols, mask=mask)
        k = cache_value(k, k_scale_ptr, FP8)
        v = cache_value(v, v_scale_ptr, FP8)
        kc = k_cache_ptr + block * kc_block_stride + offset * kc_page_stride + cols
        vc = v_cache_ptr + block * vc_block_stride + offset * vc_page_stride + cols
        tl.store(kc, k.to(k_cache_ptr.dtype.element_ty), mask=mask)
        tl.store(vc, v.to(v_cache_ptr.dtype.element_ty), mask=mask)


def _flat_rows(x: torch.Tensor) -> torch.Tensor:
    x2 = x.reshape(x.shape[0], -1)
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def store_kvcache_triton(key, value, k_cache, v_cache, slot_mapping, k_scale=None, v_scale=None):
    t = key.shape[0]
    if t == 0:
        return
    assert k_cache[0, 0].is_contiguous() and v_cache[0, 0].is_contiguous(), "cache rows must be contiguous"
    k2, v2 = _flat_rows(key), _flat_rows(value)
    row = k2.shape[1]
    block = min(triton.next_power_of_2(row), 4096)
    fp8 = k_cache.dtype == torch.float8_e4m3fn
    k_scale_t, v_scale_t = cache_scales(k_cache, k_scale, v_scale, slot_mapping)
    _store_kvcache_kernel[(t, triton.cdiv(row, block))](
        k2,
        v2,
        k_cache,
        v_cache,
        slot_mapping,
        k_scale_t,
        v_scale_t,
        k2.stride(0),
        v2.stride(0),
        k_cache.stride(0),
        k_cache.stride(1),
        v_cache.stride(0),
        v_cache.stride(1),
        k_cache.shape[1],
        row,
        FP8=fp8,
        BLOCK=block,
        num_warps=4,
    )


def _to_cache(x: torch.Tensor, cache: torch.Tensor, scale) -> torch.Tensor:
    if cache.dtype == torch.float8_e4m3fn:
        return quantize_fp8_ref(x, 1.0 if scale is None else scale)
    return x if x.dtype == cache.dtype else x.to(cache.dtype)


def store_kvcache_ref(key, value, k_cache, v_cache, slot_mapping, k_scale=None, v_scale=None, slots_valid=False):
    if not slots_valid:
        keep = slot_mapping >= 0
        if not bool(keep.all()):
            key, value, slot_mapping = key[keep], value[keep], slot_mapping[keep]
    slots = slot_mapping if slot_mapping.dtype == torch.long else slot_mapping.long()
    for x, cache, scale in ((key, k_cache, k_scale), (value, v_cache, v_scale)):
        rows, flat = _to_cache(x, cache, scale), cache.view(-1, *cache.shape[2:])
        if cache.dtype == torch.float8_e4m3fn:  # index_copy_ has no float8 kernel; copy the bytes
            rows, flat = rows.view(torch.uint8), flat.view(torch.uint8)
        flat.index_copy_(0, slots, rows)


def store_kvcache(
    key: torch.Tensor,
    value: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    k_scale: float | torch.Tensor | None = None,
    v_scale: float | torch.Tensor | None = None,
    slots_valid: bool = False,
) -> None:
    """`key/value [T, Hk, D]` into `k_cache/v_cache [N, P, Hk, D]` at `slot_mapping [T]`, in place.

    `slots_valid`: the caller knows no slot is negative (the CPU twin then skips checking)."""
    if use_triton(key):
        store_kvcache_triton(key, value, k_cache, v_cache, slot_mapping, k_scale, v_scale)
    else:
        store_kvcache_ref(key, value, k_cache, v_cache, slot_mapping, k_scale, v_scale, slots_valid)
