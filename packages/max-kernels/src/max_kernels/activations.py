"""Gated activations for MLPs: `[..., 2F] -> [..., F]`, the first half activated times the second half."""

import torch
import torch.nn.functional as F

from max_kernels.dispatch import import_triton, use_triton

triton, tl = import_triton()


@triton.jit
def _gated_kernel(x_ptr, out_ptr, n_cols, x_stride, out_stride, GELU: tl.constexpr, BLOCK: tl.constexpr):
    """Grid (rows, column chunks); math in float32."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    a = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(x_ptr + row * x_stride + n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    if GELU:
        inner = 0.7978845608028654 * (a + 0.044715 * a * a * a)
        e = tl.exp(-2.0 * tl.abs(inner))
        tanh = tl.where(inner >= 0, 1.0, -1.0) * (1.0 - e) / (1.0 + e)
        act = 0.5 * a * (1.0 + tanh)
    else:
        act = a * tl.sigmoid(a)
    tl.store(out_ptr + row * out_stride + cols, (act * b).to(out_ptr.dtype.element_ty), mask=mask)


def _gated_triton(x: torch.Tensor, gelu: bool) -> torch.Tensor:
    f = x.shape[-1] // 2
    x2 = x.reshape(-1, 2 * f)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    out = torch.empty(x2.shape[0], f, dtype=x.dtype, device=x.device)
    if x2.shape[0] > 0 and f > 0:
        block = min(triton.next_power_of_2(f), 1024)
        _gated_kernel[(x2.shape[0], triton.cdiv(f, block))](
            x2, out, f, x2.stride(0), out.stride(0), GELU=gelu, BLOCK=block, num_warps=4
        )
    return out.view(*x.shape[:-1], f)


def silu_and_mul_triton(x: torch.Tensor) -> torch.Tensor:
    return _gated_triton(x, gelu=False)


def gelu_tanh_and_mul_triton(x: torch.Tensor) -> torch.Tensor:
    return _gated_triton(x, gelu=True)


def silu_and_mul_ref(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return (F.silu(a.float()) * b.float()).to(x.dtype)


def gelu_tanh_and_mul_ref(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return (F.gelu(a.float(), approximate="tanh") * b.float()).to(x.dtype)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    return silu_and_mul_triton(x) if use_triton(x) else silu_and_mul_ref(x)


def gelu_tanh_and_mul(x: torch.Tensor) -> torch.Tensor:
    return gelu_tanh_and_mul_triton(x) if use_triton(x) else gelu_tanh_and_mul_ref(x)
