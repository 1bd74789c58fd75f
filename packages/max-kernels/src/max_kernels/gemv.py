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
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from max_kernels.activations import gelu_tanh_and_mul, gelu_tanh_and_mul_ref, silu_and_mul, silu_and_mul_ref
from max_kernels.dispatch import import_triton, in_graph_step, triton_available, use_triton, use_vendor_blas

triton, tl = import_triton()

ACTIVATIONS = {"silu": 1, "gelu_tanh": 2}
_ACT_REFS = {"silu": silu_and_mul_ref, "gelu_tanh": gelu_tanh_and_mul_ref}
_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


@triton.jit
def _gemv_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    N,
    K,
    stride_w,
    UP_OFFSET,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Grid (cdiv(N, BLOCK_N),): rows `[pid * BLOCK_N, ...)` of the output; with ACT, the gate rows
    and the up rows `UP_OFFSET` further down are read together. float32 accumulation."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    rows64 = tl.where(row_mask, rows, 0).to(tl.int64)  # clamped: the weight loads need no row mask
    gate_rows = w_ptr + rows64[:, None] * stride_w
    up_rows = w_ptr + (rows64 + UP_OFFSET)[:, None] * stride_w
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    acc_up = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        if EVEN_K:
            x = tl.load(x_ptr + cols).to(tl.float32)
            acc += tl.load(gate_rows + cols[None, :]).to(tl.float32) * x[None, :]
            if ACT != 0:
                acc_up += tl.load(up_rows + cols[None, :]).to(tl.float32) * x[None, :]
        else:
            col_mask = cols < K
            x = tl.load(x_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
            acc += tl.load(gate_rows + cols[None, :], mask=col_mask[None, :], other=0.0).to(tl.float32) * x[None, :]
            if ACT != 0:
                w_up = tl.load(up_rows + cols[None, :], mask=col_mask[None, :], other=0.0)
                acc_up += w_up.to(tl.float32) * x[None, :]
    y = tl.sum(acc, axis=1)
    if HAS_BIAS:
        y += tl.load(b_ptr + rows64).to(tl.float32)
    if ACT != 0:
        up = tl.sum(acc_up, axis=1)
        if HAS_BIAS:
            up += tl.load(b_ptr + rows64 + UP_OFFSET).to(tl.float32)
        if ACT == 1:
            y = y * tl.sigmoid(y)
        else:
            inner = 0.7978845608028654 * (y + 0.044715 * y * y * y)
            e = tl.exp(-2.0 * tl.abs(inner))
            y = 0.5 * y * (1.0 + tl.where(inner >= 0, 1.0, -1.0) * (1.0 - e) / (1.0 + e))
        y = y * up
    tl.store(out_ptr + rows, y.to(out_ptr.dtype.element_ty), mask=row_mask)


if triton_available():
    _TUNED = triton.autotune(
        configs=[
            triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
            for n, k, w, s in [
                (2, 2048, 8, 2), (4, 1024, 4, 3), (8, 256, 4, 4), (8, 512, 4, 3),
                (8, 1024, 8, 3), (16, 256, 4, 4), (16, 512, 8, 3), (32, 256, 8, 3),
            ]
        ],
        key=["N", "K", "ACT"],
        # the timings are kept on disk, so later processes skip the search (where Triton can)
        **({"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}),
    )(triton.heuristics({"EVEN_K": lambda a: a["K"] % a["BLOCK_K"] == 0})(_gemv_kernel))


def gemv_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, act: str | None = None):
    """`x [1, K]` times `weight [N, K]`; with `act`, `weight` is `[2F, K]` (gate rows, then up rows)
    and the result `act(gate) * up` is `[1, F]`."""
    k = x.shape[-1]
    n = weight.shape[0] // 2 if act else weight.shape[0]
    x = x.reshape(-1).contiguous()
    weight = weight if weight.stride(-1) == 1 else weight.contiguous()
    out = torch.empty(1, n, dtype=x.dtype, device=x.device)
    args = (x, weight, bias if bias is not None else x, out, n, k, weight.stride(0), n)
    flags = dict(HAS_BIAS=bias is not None, ACT=ACTIVATIONS[act] if act else 0)
    if x.is_cuda:
        _TUNED[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]),)](*args, **flags)
    else:  # the interpreter: one fixed shape
        block_k = min(triton.next_power_of_2(k), 128)
        _gemv_kernel[(triton.cdiv(n, 4),)](*args, **flags, EVEN_K=k % block_k == 0, BLOCK_N=4, BLOCK_K=block_k)
    return out


def gemv_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, act: str | None = None):
    y = F.linear(x, weight, bias)
    return _ACT_REFS[act](y) if act else y


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


def _use_gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str | None) -> bool:
    return (
        x.dim() == 2
        and x.shape[0] == 1
        and x.dtype in _DTYPES
        and weight.dtype == x.dtype
        and use_triton(x)
        and not use_vendor_blas()
        and _kernel_wins(x, weight, bias, act)
    )


def _vendor(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str | None) -> torch.Tensor:
    """The path without the kernel: the vendor BLAS, then the activation's own kernel."""
    y = F.linear(x, weight, bias)
    return (silu_and_mul if act == "silu" else gelu_tanh_and_mul)(y) if act else y


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear`, through the batch-1 kernel where it is faster."""
    return gemv_triton(x, weight, bias) if _use_gemv(x, weight, bias, None) else _vendor(x, weight, bias, None)


def gated_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str) -> torch.Tensor:
    """`act(y[..., :F]) * y[..., F:]` of `y = F.linear(x, weight, bias)`, fused at batch 1 where faster."""
    return gemv_triton(x, weight, bias, act) if _use_gemv(x, weight, bias, act) else _vendor(x, weight, bias, act)
