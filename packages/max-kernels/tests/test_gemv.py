"""The batch-1 matrix-vector kernel (plain and with the gated activation fused) against float64."""

import pytest
import torch
import torch.nn.functional as F
from max_kernels import dispatch
from max_kernels.dispatch import kernel_preferences, set_kernel_preferences
from max_kernels.gemv import PendingNorm, gemv_ref, gemv_triton, linear, linear_add
from max_kernels.norms import rms_norm_triton


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


def _stream(n, k, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, k, generator=g).to(dtype)
    weight = (torch.randn(n, k, generator=g) / k**0.5).to(dtype)
    residual = torch.randn(1, n, generator=g).to(dtype)
    return x, weight, residual, g


@pytest.mark.parametrize("n,k", [(48, 64), (40, 200), (7, 96)])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_residual_add_is_the_norm_kernels_sum(n, k, bias, dtype):
    """The sum equals, bit for bit, what the product then the norm's fused add write."""
    x, weight, residual, g = _stream(n, k, dtype, seed=n + k)
    b = torch.randn(n, generator=g).to(dtype) if bias else None
    total = gemv_triton(x, weight, b, residual=residual)
    _, want = rms_norm_triton(gemv_triton(x, weight, b), torch.ones(n, dtype=dtype), 1e-6, residual)
    assert torch.equal(total, want)


@pytest.mark.parametrize("n,k", [(5, 64), (34, 200), (3, 1000)])
@pytest.mark.parametrize("act", [None, "silu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pending_norm_is_normalized_as_read(n, k, act, dtype):
    """A PendingNorm input gives what the norm kernel then the product give, within the rounding of
    the normalized input (the kernel scales the dots instead of rounding it) and of a sum of squares
    taken in another order."""
    x, weight, residual, g = _stream(k, 16, dtype, seed=n * k)
    stream = gemv_triton(x, weight, residual=residual)
    norm_w = (1 + 0.1 * torch.randn(k, generator=g)).to(dtype)
    w2 = (torch.randn(2 * n if act else n, k, generator=g) / k**0.5).to(dtype)
    got = gemv_triton(PendingNorm(stream, norm_w, 1e-5), w2, None, act)
    want = gemv_triton(rms_norm_triton(stream, norm_w, 1e-5), w2, None, act)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    normed = torch.rms_norm(stream.double(), (k,), norm_w.double(), 1e-5)
    torch.testing.assert_close(got.double(), _reference(normed, w2.double(), None, act), rtol=4 * tol, atol=4 * tol)


def test_linear_add_and_pending_norm_follow_the_preference(monkeypatch):
    """`linear_add` runs where fusing is on; off, the caller is told to add in the norm, and a
    PendingNorm handed to `linear` is applied by the norm kernel first: the same result."""
    monkeypatch.setattr(dispatch, "_triton_on_cpu", lambda: True)  # CPU tensors take the kernels
    x, weight, residual, g = _stream(32, 48, torch.float32, seed=3)
    norm_w = torch.rand(32, generator=g) + 0.5
    w2 = torch.randn(8, 32, generator=g)
    fused = linear_add(x, weight, None, residual)
    assert fused is not None
    pending = PendingNorm(fused, norm_w, 1e-6)
    before = kernel_preferences()
    saved = (before.experimental, before.vendor_blas, before.fused_products)
    try:
        set_kernel_preferences(before.experimental, before.vendor_blas, fused_products=False)
        assert linear_add(x, weight, None, residual) is None
        unfused = linear(pending, w2)
    finally:
        set_kernel_preferences(*saved)
    assert kernel_preferences().fused_products
    torch.testing.assert_close(linear(pending, w2), unfused, rtol=1e-5, atol=1e-5)
    assert linear_add(torch.cat([x, x]), weight, None, torch.cat([residual, residual])) is None  # batch 2
