"""RMSNorm (with an optional fused residual add) and LayerNorm over the last dimension.

Statistics are taken in float32 whatever the input dtype; the output has the input's dtype.
With a residual, the sum `x + residual` is rounded to the input dtype first (as the model's residual
stream would be) and the norm is taken of that rounded sum.
"""

import torch

from max_kernels.dispatch import import_triton, use_triton

triton, tl = import_triton()


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    res_ptr,
    w_ptr,
    y_ptr,
    res_out_ptr,
    n_cols,
    x_stride,
    res_stride,
    y_stride,
    res_out_stride,
    eps,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    xf = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        xf += tl.load(res_ptr + row * res_stride + cols, mask=mask, other=0.0).to(tl.float32)
        rounded = xf.to(res_out_ptr.dtype.element_ty)
        tl.store(res_out_ptr + row * res_out_stride + cols, rounded, mask=mask)
        xf = rounded.to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(xf * xf, axis=0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * y_stride + cols, (xf * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _layer_norm_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    y_ptr,
    n_cols,
    x_stride,
    y_stride,
    eps,
    HAS_BIAS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / n_cols
    xc = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=0) / n_cols + eps)
    y = xc * rstd * tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        y += tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * y_stride + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def _rows(x: torch.Tensor) -> torch.Tensor:
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def _block(n: int) -> tuple[int, int]:
    block = triton.next_power_of_2(n)
    return block, min(max(block // 256, 1), 16)


def rms_norm_triton(x, weight, eps, residual=None):
    x2 = _rows(x)
    y = torch.empty_like(x2)
    block, warps = _block(x2.shape[1])
    if residual is None:
        res2, res_out = x2, x2
    else:
        res2, res_out = _rows(residual), torch.empty_like(x2)
    if x2.shape[0] > 0:
        _rms_norm_kernel[(x2.shape[0],)](
            x2,
            res2,
            weight,
            y,
            res_out,
            x2.shape[1],
            x2.stride(0),
            res2.stride(0),
            y.stride(0),
            res_out.stride(0),
            eps,
            HAS_RESIDUAL=residual is not None,
            BLOCK=block,
            num_warps=warps,
        )
    if residual is None:
        return y.view(x.shape)
    return y.view(x.shape), res_out.view(x.shape)


def rms_norm_ref(x, weight, eps, residual=None):
    s = x if residual is None else x + residual
    y = torch.rms_norm(s.float(), s.shape[-1:], weight.float(), eps)
    y = y if y.dtype == x.dtype else y.to(x.dtype)
    return y if residual is None else (y, s)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None):
    """`y`, or `(y, x + residual)` when `residual` is given (the norm is taken of the sum)."""
    fn = rms_norm_triton if use_triton(x) else rms_norm_ref
    return fn(x, weight, eps, residual)


def layer_norm_triton(x, weight, bias, eps):
    x2 = _rows(x)
    y = torch.empty_like(x2)
    block, warps = _block(x2.shape[1])
    if x2.shape[0] > 0:
        _layer_norm_kernel[(x2.shape[0],)](
            x2,
            weight,
            weight if bias is None else bias,
            y,
            x2.shape[1],
            x2.stride(0),
            y.stride(0),
            eps,
            HAS_BIAS=bias is not None,
            BLOCK=block,
            num_warps=warps,
        )
    return y.view(x.shape)


def layer_norm_ref(x, weight, bias, eps):
    xf = x.float()
    b = None if bias is None else bias.float()
    return torch.nn.functional.layer_norm(xf, xf.shape[-1:], weight.float(), b, eps).to(x.dtype)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    fn = layer_norm_triton if use_triton(x) else layer_norm_ref
    return fn(x, weight, bias, eps)
