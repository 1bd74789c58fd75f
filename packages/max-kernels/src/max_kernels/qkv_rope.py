"""The batch-1 QKV projection with RoPE and the KV-cache write in its epilogue: one kernel from the
layer's (normalized) input to the rotated query, with the rotated key and the value in the cache.

Each program owns `BLOCK_N` feature pairs `(j, j + D/2)` of one head of the fused QKV output, the
pairs the rotate-half RoPE mixes, so it can rotate what it computed without another kernel. It reads
the weight rows of both halves together (as the gated products read gate and up rows); values are
rounded to the activation dtype before the rotation and after it, as `F.linear` then `rope_kv_store`
would round them. Full rotary (rotary_dim == head_dim) without per-head q/k norms only (those need a
whole head per program); the caller checks. Float8 caches store `x / scale`.
"""

from __future__ import annotations

import torch

from max_kernels.dispatch import import_triton, triton_available
from max_kernels.fp8 import cache_scales, cache_value
from max_kernels.gemv import (
    PendingNorm,
    autotuned,
    batch_one_input,
    fuses_batch_one,
    pdl_entry,
    pdl_options,
    row_dots,
)
from max_kernels.norms import rms_norm_ref
from max_kernels.rope_store import rope_kv_store_ref
from max_kernels.rotary import rotate_pair

triton, tl = import_triton()


@triton.jit
def _qkv_rope_store_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    norm_w_ptr,
    pos_ptr,
    cos_sin_ptr,
    slot_ptr,
    q_out_ptr,
    k_cache_ptr,
    v_cache_ptr,
    k_scale_ptr,
    v_scale_ptr,
    K,
    stride_w,
    eps,
    n_q_heads,
    n_kv_heads,
    cos_sin_stride,
    page_size,
    kc_stride_n,
    kc_stride_p,
    kc_stride_h,
    vc_stride_n,
    vc_stride_p,
    vc_stride_h,
    HALF: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    NORM_IN: tl.constexpr,
    FP8: tl.constexpr,
    EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    USE_PDL: tl.constexpr,
):
    """Grid ((Hq + 2 Hk) * HALF / BLOCK_N,): program `pid` takes head `pid // (HALF / BLOCK_N)` (q
    heads, then k heads, then v heads) and its pairs `j, j + HALF` for BLOCK_N consecutive `j`."""
    pdl_entry(USE_PDL)
    per_head = HALF // BLOCK_N
    head = tl.program_id(0) // per_head
    j = (tl.program_id(0) % per_head) * BLOCK_N + tl.arange(0, BLOCK_N)
    first = (head * 2 * HALF + j).to(tl.int64)
    y1, y2 = row_dots(
        x_ptr, w_ptr + first[:, None] * stride_w, w_ptr + (first + HALF)[:, None] * stride_w, K, eps,
        norm_w_ptr, NORM_IN, True, EVEN_K, BLOCK_N, BLOCK_K,
    )
    if HAS_BIAS:
        y1 += tl.load(b_ptr + first).to(tl.float32)
        y2 += tl.load(b_ptr + first + HALF).to(tl.float32)
    dtype = q_out_ptr.dtype.element_ty
    x1 = y1.to(dtype).to(tl.float32)  # the projection's output, as stored
    x2 = y2.to(dtype).to(tl.float32)
    if head < n_q_heads + n_kv_heads:  # q and k heads rotate
        row = tl.load(pos_ptr).to(tl.int64) * cos_sin_stride
        cos = tl.load(cos_sin_ptr + row + j)
        sin = tl.load(cos_sin_ptr + row + HALF + j)
        r1, r2 = rotate_pair(x1, x2, cos, sin)
        r1, r2 = r1.to(dtype), r2.to(dtype)
    else:
        r1 = x1.to(dtype)
        r2 = x2.to(dtype)
    if head < n_q_heads:
        q = q_out_ptr + head * 2 * HALF + j
        tl.store(q, r1)
        tl.store(q + HALF, r2)
    else:
        slot = tl.load(slot_ptr).to(tl.int64)
        if slot >= 0:
            block, offset = slot // page_size, slot % page_size
            if head < n_q_heads + n_kv_heads:
                dst = k_cache_ptr + block * kc_stride_n + offset * kc_stride_p + (head - n_q_heads) * kc_stride_h + j
                scale_ptr = k_scale_ptr
            else:
                kv_head = head - n_q_heads - n_kv_heads
                dst = v_cache_ptr + block * vc_stride_n + offset * vc_stride_p + kv_head * vc_stride_h + j
                scale_ptr = v_scale_ptr
            tl.store(dst, cache_value(r1, scale_ptr, FP8).to(k_cache_ptr.dtype.element_ty))
            tl.store(dst + HALF, cache_value(r2, scale_ptr, FP8).to(k_cache_ptr.dtype.element_ty))


_CONFIGS = [  # (BLOCK_N pairs, BLOCK_K, warps, stages); BLOCK_N divides every head's half. The best of
    # a wider sweep, timed as a replayed decode step runs them (tools/bench_gemv_graph.py)
    (1, 1024, 4, 3), (1, 2048, 4, 3), (2, 1024, 4, 4), (4, 512, 4, 3), (8, 512, 8, 3), (16, 256, 8, 3),
]


def _dividing_half(configs, named_args, **kwargs):
    """Configurations whose BLOCK_N pairs tile a head's half."""
    half = kwargs.get("HALF", named_args.get("HALF"))
    return [c for c in configs if half % c.kwargs["BLOCK_N"] == 0] or [triton.Config({"BLOCK_N": 1, "BLOCK_K": 256})]


if triton_available():
    _TUNED = autotuned(
        _qkv_rope_store_kernel,
        _CONFIGS,
        ["K", "n_q_heads", "n_kv_heads", "HALF", "NORM_IN"],
        prune_configs_by={"early_config_prune": _dividing_half},
    )


def qkv_rope_store_triton(
    x, weight, bias, num_q_heads, num_kv_heads, positions, cos_sin_cache, k_cache, v_cache, slot_mapping,
    k_scale=None, v_scale=None,
):
    """`x [1, K]` (or a PendingNorm of it) through the QKV `weight [(Hq + 2 Hk) * D, K]`; returns the
    rotated q `[1, Hq, D]` and writes k and v at `slot_mapping[0]`."""
    x, norm = batch_one_input(x)
    k = x.shape[0]
    d = cos_sin_cache.shape[1]
    weight = weight if weight.stride(-1) == 1 else weight.contiguous()
    q_out = torch.empty(1, num_q_heads, d, dtype=x.dtype, device=x.device)
    fp8 = k_cache.dtype == torch.float8_e4m3fn
    k_scale_t, v_scale_t = cache_scales(k_cache, k_scale, v_scale, cos_sin_cache)
    args = (
        x, weight, x if bias is None else bias, x if norm is None else norm.weight, positions, cos_sin_cache,
        slot_mapping, q_out,
        k_cache, v_cache, k_scale_t, v_scale_t, k, weight.stride(0), norm.eps if norm else 0.0,
        num_q_heads, num_kv_heads, cos_sin_cache.stride(0), k_cache.shape[1],
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
    )
    flags = dict(
        HALF=d // 2, HAS_BIAS=bias is not None, NORM_IN=norm is not None, FP8=fp8)
    heads = num_q_heads + 2 * num_kv_heads
    if x.is_cuda:
        _TUNED[lambda meta: (heads * (d // 2) // meta["BLOCK_N"],)](*args, **flags, **pdl_options(x))
    else:  # the interpreter: one fixed shape
        block_n, block_k = 2 if d % 4 == 0 else 1, min(triton.next_power_of_2(k), 128)  # pairs tile a half
        _qkv_rope_store_kernel[(heads * (d // 2) // block_n,)](
            *args, **flags, USE_PDL=False, EVEN_K=k % block_k == 0, BLOCK_N=block_n, BLOCK_K=block_k
        )
    return q_out


def qkv_rope_store_ref(
    x, weight, bias, num_q_heads, num_kv_heads, positions, cos_sin_cache, k_cache, v_cache, slot_mapping,
    k_scale=None, v_scale=None,
):
    if isinstance(x, PendingNorm):
        x = rms_norm_ref(x.x, x.weight, x.eps)
    d = cos_sin_cache.shape[1]
    qkv = torch.nn.functional.linear(x, weight, bias).view(-1, num_q_heads + 2 * num_kv_heads, d)
    q, k, v = qkv.split([num_q_heads, num_kv_heads, num_kv_heads], dim=1)
    return rope_kv_store_ref(q, k, v, positions, cos_sin_cache, True, k_cache, v_cache, slot_mapping, k_scale, v_scale)


def qkv_rope_store(
    x: torch.Tensor | PendingNorm,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    num_q_heads: int,
    num_kv_heads: int,
    positions: torch.Tensor,
    cos_sin_cache: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    k_scale: float | torch.Tensor | None = None,
    v_scale: float | torch.Tensor | None = None,
) -> torch.Tensor | None:
    """The rotated q `[1, Hq, D]` of one token from one kernel (k and v written to the caches), where
    the fused batch-1 path runs (`gemv.fuses_batch_one`) and the rotary table covers whole heads
    (`cos_sin_cache [P, D]`); None elsewhere (the caller then projects, rotates and stores as usual)."""
    plain = x.x if isinstance(x, PendingNorm) else x
    heads = num_q_heads + 2 * num_kv_heads
    if not (fuses_batch_one(plain, weight) and heads * cos_sin_cache.shape[1] == weight.shape[0]):
        return None
    return qkv_rope_store_triton(
        x, weight, bias, num_q_heads, num_kv_heads, positions, cos_sin_cache, k_cache, v_cache, slot_mapping,
        k_scale, v_scale,
    )
