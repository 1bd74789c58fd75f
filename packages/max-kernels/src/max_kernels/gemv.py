"""Batch-1 matrix-vector products: `y = x @ W.T (+ b)` for one row `x`, optionally ending in the
gated activation of a fused gate/up projection (`act(y[:F]) * y[F:]`, the MLP's first half).

A batch-1 decode step only streams its weights. Each program here owns a few whole rows of `W`
and walks `K`, so every weight byte is read once, with no split-K partials to reduce and, for
the gate/up projection, no separate activation kernel. The vendor BLAS is not always slower, so
`linear` and `gated_linear` time both once per shape on the first call (never while a device
graph is being captured) and keep the faster; `--use-vendor-blas` keeps the vendor's. On a GPU the
kernel runs only in steps captured into device graphs (`dispatch.graph_step`): launched eagerly,
Triton's launcher costs the host more than the kernel saves. On the CPU (Triton's interpreter) it is
always taken, so the GPU code path is what tests check.

In those steps it also takes the RMSNorm and residual add between a decoder's products: an output
projection adds its result to the residual stream (`linear_add`), and the next product reads that sum
as a `PendingNorm`: every program reads the whole row anyway, so it sums its squares on the way and
scales its dot products by the reciprocal RMS at the end (the QKV product also applies RoPE and writes
the KV cache, `qkv_rope`). A Llama layer then runs no norm kernel at all; this path is taken without
timing it against the vendor BLAS.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from max_kernels.activations import gelu_tanh_and_mul, gelu_tanh_and_mul_ref, silu_and_mul, silu_and_mul_ref
from max_kernels.dispatch import (
    import_triton,
    in_graph_step,
    kernel_preferences,
    triton_available,
    use_pdl,
    use_triton,
    use_vendor_blas,
)
from max_kernels.norms import rms_norm, rms_norm_ref

triton, tl = import_triton()

ACTIVATIONS = {"silu": 1, "gelu_tanh": 2}
_ACT_OPS = {"silu": silu_and_mul, "gelu_tanh": gelu_tanh_and_mul}
_ACT_REFS = {"silu": silu_and_mul_ref, "gelu_tanh": gelu_tanh_and_mul_ref}
_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


@triton.jit
def pdl_entry(USE_PDL: tl.constexpr):
    """A kernel launched as a programmatic dependent (`pdl_options`) waits here for the kernel before
    it, ahead of any load or store, then lets the next one launch."""
    if USE_PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()


@triton.jit
def row_dots(
    x_ptr,
    a_rows,
    b_rows,
    K,
    eps,
    norm_w_ptr,
    NORM_IN: tl.constexpr,
    TWO: tl.constexpr,
    EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """`(W[a] . x, W[b] . x)`, float32 `[BLOCK_N]` each, for the weight rows starting at `a_rows` and
    (with TWO; else zeros) `b_rows` (`[BLOCK_N, 1]` pointers). With NORM_IN, `x` is RMS-normalized
    (epsilon `eps`, weight `norm_w`): the dots are of `x * norm_w`, scaled by 1 / rms(x) at the end,
    the squares summed from the chunks of `x` the loop reads anyway."""
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    acc_b = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    squares = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        col_mask = cols < K
        if EVEN_K:
            x = tl.load(x_ptr + cols).to(tl.float32)
        else:
            x = tl.load(x_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
        if NORM_IN:
            squares += x * x
            x *= tl.load(norm_w_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
        if EVEN_K:
            acc += tl.load(a_rows + cols[None, :]).to(tl.float32) * x[None, :]
            if TWO:
                acc_b += tl.load(b_rows + cols[None, :]).to(tl.float32) * x[None, :]
        else:
            acc += tl.load(a_rows + cols[None, :], mask=col_mask[None, :], other=0.0).to(tl.float32) * x[None, :]
            if TWO:
                acc_b += tl.load(b_rows + cols[None, :], mask=col_mask[None, :], other=0.0).to(tl.float32) * x[None, :]
    a, b = tl.sum(acc, axis=1), tl.sum(acc_b, axis=1)
    if NORM_IN:
        rstd = 1.0 / tl.sqrt(tl.sum(squares, axis=0) / K + eps)
        a, b = a * rstd, b * rstd
    return a, b


@triton.jit
def _gemv_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    res_ptr,
    norm_w_ptr,
    N,
    K,
    stride_w,
    UP_OFFSET,
    eps,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    NORM_IN: tl.constexpr,
    RES_OUT: tl.constexpr,
    EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    USE_PDL: tl.constexpr,
):
    """Grid (cdiv(N, BLOCK_N),): rows `[pid * BLOCK_N, ...)` of the output; with ACT, the gate rows
    and the up rows `UP_OFFSET` further down are read together. float32 accumulation.

    NORM_IN: `x` is RMS-normalized (epsilon `eps`, weight `norm_w`) as it is read (`row_dots`).
    RES_OUT: the output is `y + res`, rounded as the residual stream is. USE_PDL: see `pdl_entry`."""
    pdl_entry(USE_PDL)
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    rows64 = tl.where(row_mask, rows, 0).to(tl.int64)  # clamped: the weight loads need no row mask
    gate_rows = w_ptr + rows64[:, None] * stride_w
    up_rows = w_ptr + (rows64 + UP_OFFSET)[:, None] * stride_w
    y, up = row_dots(x_ptr, gate_rows, up_rows, K, eps, norm_w_ptr, NORM_IN, ACT != 0, EVEN_K, BLOCK_N, BLOCK_K)
    if HAS_BIAS:
        y += tl.load(b_ptr + rows64).to(tl.float32)
    if ACT != 0:
        if HAS_BIAS:
            up += tl.load(b_ptr + rows64 + UP_OFFSET).to(tl.float32)
        if ACT == 1:
            y = y * tl.sigmoid(y)
        else:
            inner = 0.7978845608028654 * (y + 0.044715 * y * y * y)
            e = tl.exp(-2.0 * tl.abs(inner))
            y = 0.5 * y * (1.0 + tl.where(inner >= 0, 1.0, -1.0) * (1.0 - e) / (1.0 + e))
        y = y * up
    if RES_OUT:  # the product is rounded first, as it would be stored before the add
        y = y.to(out_ptr.dtype.element_ty).to(tl.float32) + tl.load(res_ptr + rows64).to(tl.float32)
    tl.store(out_ptr + rows, y.to(out_ptr.dtype.element_ty), mask=row_mask)


_CONFIGS = [  # (BLOCK_N, BLOCK_K, warps, stages): the best of a wider sweep over Llama-8B's products,
    # timed as a replayed decode step runs them (tools/bench_gemv_graph.py)
    (1, 2048, 4, 3), (2, 1024, 4, 4), (2, 2048, 8, 2), (4, 512, 4, 4), (4, 1024, 4, 3),
    (8, 256, 4, 4), (16, 256, 4, 4), (16, 512, 8, 3),
]


def autotuned(kernel, configs, key, **options):
    """`kernel` autotuned over `(BLOCK_N, BLOCK_K, warps, stages)` configurations, EVEN_K derived; the
    timings are kept on disk, so later processes skip the search (where Triton can)."""
    if "cache_results" in inspect.signature(triton.autotune).parameters:
        options["cache_results"] = True
    return triton.autotune(
        configs=[triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s) for n, k, w, s in configs],
        key=key,
        **options,
    )(triton.heuristics({"EVEN_K": lambda a: a["K"] % a["BLOCK_K"] == 0})(kernel))


if triton_available():
    _TUNED = autotuned(_gemv_kernel, _CONFIGS, ["N", "K", "ACT", "NORM_IN", "RES_OUT"])


@dataclass(frozen=True)
class PendingNorm:
    """`rms_norm(x, weight, eps)` of a one-row `x` not yet applied: the next batch-1 product
    normalizes `x` as it reads it instead of a norm kernel running in between."""

    x: torch.Tensor
    weight: torch.Tensor
    eps: float

    def apply(self) -> torch.Tensor:
        return rms_norm(self.x, self.weight, self.eps)


def pdl_options(x: torch.Tensor) -> dict:
    """Launch arguments of a batch-1 kernel on `x`'s device: USE_PDL, and `launch_pdl` with it."""
    return {"USE_PDL": True, "launch_pdl": True} if use_pdl(x) else {"USE_PDL": False}


def batch_one_input(x: torch.Tensor | PendingNorm) -> tuple[torch.Tensor, PendingNorm | None]:
    """The row a batch-1 kernel reads (flat, contiguous) and the PendingNorm it comes with, if any."""
    norm = x if isinstance(x, PendingNorm) else None
    flat = (norm.x if norm else x).reshape(-1)
    return (flat if flat.stride(0) == 1 else flat.contiguous()), norm


def gemv_triton(
    x: torch.Tensor | PendingNorm,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str | None = None,
    residual: torch.Tensor | None = None,
):
    """`x [1, K]` times `weight [N, K]`; with `act`, `weight` is `[2F, K]` (gate rows, then up rows)
    and the result `act(gate) * up` is `[1, F]`. `x` may be a PendingNorm (normalized as read).
    With `residual [1, N]`, returns `y + residual`, rounded as the residual stream is."""
    x, norm = batch_one_input(x)
    k = x.shape[0]
    n = weight.shape[0] // 2 if act else weight.shape[0]
    weight = weight if weight.stride(-1) == 1 else weight.contiguous()
    out = torch.empty(1, n, dtype=x.dtype, device=x.device)
    args = (
        x,
        weight,
        x if bias is None else bias,
        out,
        x if residual is None else residual.reshape(-1),
        x if norm is None else norm.weight,
        n,
        k,
        weight.stride(0),
        n,
        norm.eps if norm else 0.0,
    )
    flags = dict(
        HAS_BIAS=bias is not None,
        ACT=ACTIVATIONS[act] if act else 0,
        NORM_IN=norm is not None,
        RES_OUT=residual is not None,
    )
    if x.is_cuda:
        _TUNED[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]),)](*args, **flags, **pdl_options(x))
    else:  # the interpreter: one fixed shape
        block_k = min(triton.next_power_of_2(k), 128)
        _gemv_kernel[(triton.cdiv(n, 4),)](*args, **flags, USE_PDL=False, EVEN_K=k % block_k == 0, BLOCK_N=4, BLOCK_K=block_k)
    return out


def gemv_ref(
    x: torch.Tensor | PendingNorm,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str | None = None,
    residual: torch.Tensor | None = None,
):
    if isinstance(x, PendingNorm):
        x = rms_norm_ref(x.x, x.weight, x.eps)
    y = F.linear(x, weight, bias)
    y = _ACT_REFS[act](y) if act else y
    return y if residual is None else y + residual


_CHOICES: dict[tuple, bool] = {}


def gemv_choices() -> dict[tuple, bool]:
    """`(N, K, dtype, act) -> True` where the kernel was measured faster than the vendor BLAS."""
    return dict(_CHOICES)


def _kernel_wins(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str | None) -> bool:
    if not x.is_cuda:
        return True
    if not in_graph_step():  # eagerly, the launcher's host time would outweigh the gain
        return False
    key = (*weight.shape, x.dtype, act)
    if key not in _CHOICES:
        if torch.cuda.is_current_stream_capturing():
            return False
        from triton.testing import do_bench

        ours = do_bench(lambda: gemv_triton(x, weight, bias, act), warmup=10, rep=50)
        vendor = do_bench(lambda: _vendor(x, weight, bias, act), warmup=10, rep=50)
        _CHOICES[key] = ours < vendor
    return _CHOICES[key]


def _batch_one(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """A one-row float product that the kernel can run."""
    return (
        x.dim() == 2
        and x.shape[0] == 1
        and x.dtype in _DTYPES
        and weight.dtype == x.dtype
        and use_triton(x)
        and not use_vendor_blas()
    )


def fuses_batch_one(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Where the kernel runs whatever the vendor BLAS would take: with a norm, a residual add or RoPE
    fused into it, it saves a kernel of its own (`PendingNorm`, `linear_add`, `qkv_rope_store`)."""
    return _batch_one(x, weight) and kernel_preferences().fused_products and (not x.is_cuda or in_graph_step())


def _use_gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str | None) -> bool:
    return _batch_one(x, weight) and _kernel_wins(x, weight, bias, act)


def act_and_mul(y: torch.Tensor, act: str) -> torch.Tensor:
    """`act(y[..., :F]) * y[..., F:]` by the activation's own kernel (`act` as in ACTIVATIONS)."""
    return _ACT_OPS[act](y)


def _vendor(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str | None) -> torch.Tensor:
    """The path without the kernel: the vendor BLAS, then the activation's own kernel."""
    y = F.linear(x, weight, bias)
    return act_and_mul(y, act) if act else y


def linear(x: torch.Tensor | PendingNorm, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear`, through the batch-1 kernel where it is faster; a PendingNorm `x` is normalized by
    the kernel as it is read where it can, else by its own kernel first."""
    if isinstance(x, PendingNorm):
        if fuses_batch_one(x.x, weight):
            return gemv_triton(x, weight, bias)
        x = x.apply()
    return gemv_triton(x, weight, bias) if _use_gemv(x, weight, bias, None) else _vendor(x, weight, bias, None)


def gated_linear(
    x: torch.Tensor | PendingNorm, weight: torch.Tensor, bias: torch.Tensor | None, act: str
) -> torch.Tensor:
    """`act(y[..., :F]) * y[..., F:]` of `y = F.linear(x, weight, bias)`, fused at batch 1 where faster
    (and with the norm of a PendingNorm `x`, as `linear`)."""
    if isinstance(x, PendingNorm):
        if fuses_batch_one(x.x, weight):
            return gemv_triton(x, weight, bias, act)
        x = x.apply()
    return gemv_triton(x, weight, bias, act) if _use_gemv(x, weight, bias, act) else _vendor(x, weight, bias, act)


def linear_add(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor
) -> torch.Tensor | None:
    """`F.linear(x, weight, bias) + residual` from one batch-1 kernel, the sum rounded as the residual
    stream is; None where that kernel does not run (the caller then leaves the add to the next norm,
    as before)."""
    if not (fuses_batch_one(x, weight) and residual.shape == (1, weight.shape[0]) and residual.dtype == x.dtype):
        return None
    return gemv_triton(x, weight, bias, residual=residual)
