import pytest
import torch
from max_kernels.norms import layer_norm, layer_norm_ref, layer_norm_triton, rms_norm, rms_norm_ref, rms_norm_triton


def _rms_f64(x, w, eps):
    x = x.double()
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w.double()


def _ln_f64(x, w, b, eps):
    x = x.double()
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps) * w.double()
    return y if b is None else y + b.double()


@pytest.mark.parametrize("shape", [(1, 8), (5, 33), (2, 3, 64), (0, 16)])
def test_rms_norm_ref_matches_float64(shape):
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(shape, generator=g), torch.randn(shape[-1], generator=g)
    torch.testing.assert_close(rms_norm(x, w, 1e-6).double(), _rms_f64(x, w, 1e-6), rtol=1e-5, atol=1e-5)


def test_rms_norm_fused_residual_normalizes_the_sum():
    g = torch.Generator().manual_seed(2)
    x, r, w = torch.randn(4, 24, generator=g), torch.randn(4, 24, generator=g), torch.randn(24, generator=g)
    y, s = rms_norm(x, w, 1e-5, residual=r)
    torch.testing.assert_close(s.double(), x.double() + r.double(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(y.double(), _rms_f64(x + r, w, 1e-5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_ref_matches_float64(bias):
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(3, 40, generator=g) * 3 + 1, torch.randn(40, generator=g)
    b = torch.randn(40, generator=g) if bias else None
    torch.testing.assert_close(layer_norm(x, w, b, 1e-5).double(), _ln_f64(x, w, b, 1e-5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 8), (3, 33), (2, 2, 100), (0, 16)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_rms_norm_triton_matches_twin(shape, dtype):
    g = torch.Generator().manual_seed(4)
    x, r = torch.randn(shape, generator=g).to(dtype), torch.randn(shape, generator=g).to(dtype)
    w = torch.randn(shape[-1], generator=g).to(dtype)
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(rms_norm_triton(x, w, 1e-6), rms_norm_ref(x, w, 1e-6), rtol=tol, atol=tol)
    for got, want in zip(rms_norm_triton(x, w, 1e-6, r), rms_norm_ref(x, w, 1e-6, r)):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_triton_matches_twin(bias):
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(3, 2, 37, generator=g) + 2, torch.randn(37, generator=g)
    b = torch.randn(37, generator=g) if bias else None
    torch.testing.assert_close(layer_norm_triton(x, w, b, 1e-5), layer_norm_ref(x, w, b, 1e-5), rtol=1e-5, atol=1e-5)
