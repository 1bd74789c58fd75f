"""The batch-1 matrix-vector kernel (plain and with the gated activation fused) against float64."""

import pytest
import torch
import torch.nn.functional as F
from max_kernels.gemv import gemv_ref, gemv_triton


def _reference(x, weight, bias, act):
    y = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    if act is None:
        return y
    gate, up = y.chunk(2, dim=-1)
    if act == "silu":
        return F.silu(gate) * up
    return F.gelu(gate, approximate="tanh") * up


@pytest.mark.parametrize("n,k", [(5, 64), (34, 200), (16, 256), (3, 1000)])
@pytest.mark.parametrize("act", [None, "silu", "gelu_tanh"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_gemv_matches_float64(n, k, act, bias, dtype):
    g = torch.Generator().manual_seed(n * k)
    rows = 2 * n if act else n
    x = torch.randn(1, k, generator=g).to(dtype)
    weight = (torch.randn(rows, k, generator=g) / k**0.5).to(dtype)
    b = torch.randn(rows, generator=g).to(dtype) if bias else None
    got = gemv_triton(x, weight, b, act)
    want = _reference(x, weight, b, act)
    assert got.shape == (1, n) and got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)
    torch.testing.assert_close(gemv_ref(x, weight, b, act).double(), want, rtol=tol, atol=tol)


def test_gemv_reads_a_strided_row():
    """`x` may be a row of a larger activation (a view with a row stride)."""
    g = torch.Generator().manual_seed(0)
    big = torch.randn(3, 96, generator=g)
    weight = torch.randn(7, 96, generator=g)
    torch.testing.assert_close(gemv_triton(big[1:2], weight), big[1:2] @ weight.T, rtol=1e-5, atol=1e-5)
