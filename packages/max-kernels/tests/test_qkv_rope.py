"""The QKV product with RoPE and the KV-cache write in its epilogue, against the product then
`rope_kv_store` (the twin) and against float64 math."""

import pytest
import torch
from max_kernels import dispatch
from max_kernels.gemv import PendingNorm
from max_kernels.qkv_rope import qkv_rope_store, qkv_rope_store_ref, qkv_rope_store_triton
from max_kernels.rotary import apply_rope_ref, rope_cos_sin_cache


def _case(hq, hk, d, k, dtype, seed, bias=False, cache_dtype=None, page=4):
    g = torch.Generator().manual_seed(seed)
    rows = (hq + 2 * hk) * d
    x = torch.randn(1, k, generator=g).to(dtype)
    weight = (torch.randn(rows, k, generator=g) / k**0.5).to(dtype)
    b = torch.randn(rows, generator=g).to(dtype) if bias else None
    table = rope_cos_sin_cache(d, 64, 10000.0, None, "cpu")
    positions = torch.tensor([int(torch.randint(0, 64, (1,), generator=g))])
    caches = [torch.randn(5, page, hk, d, generator=g).to(cache_dtype or dtype) for _ in range(2)]
    slot = torch.tensor([int(torch.randint(0, 5 * page, (1,), generator=g))])
    return x, weight, b, positions, table, caches, slot


@pytest.mark.parametrize("hq,hk,d,k", [(4, 2, 16, 64), (6, 2, 32, 96), (2, 1, 8, 40), (2, 1, 10, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [False, True])
def test_matches_the_product_then_rope_kv_store(hq, hk, d, k, dtype, bias):
    x, weight, b, pos, table, (kc, vc), slot = _case(hq, hk, d, k, dtype, seed=hq * d + k, bias=bias)
    kc_ref, vc_ref = kc.clone(), vc.clone()
    want = qkv_rope_store_ref(x, weight, b, hq, hk, pos, table, kc_ref, vc_ref, slot)
    got = qkv_rope_store_triton(x, weight, b, hq, hk, pos, table, kc, vc, slot)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    torch.testing.assert_close(kc, kc_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(vc, vc_ref, rtol=tol, atol=tol)
    untouched = torch.ones(kc.numel() // (hk * d), dtype=torch.bool)
    untouched[slot] = False
    assert torch.equal(kc.view(-1, hk, d)[untouched], kc_ref.view(-1, hk, d)[untouched])
    # the twin against float64: the product, then RoPE of q and k
    qkv = torch.nn.functional.linear(x.double(), weight.double(), None if b is None else b.double()).view(-1, hq + 2 * hk, d)
    q64, k64 = apply_rope_ref(qkv[:, :hq], qkv[:, hq : hq + hk], pos, table.double(), True)
    torch.testing.assert_close(want.double(), q64, rtol=4 * tol, atol=4 * tol)
    torch.testing.assert_close(kc_ref.view(-1, hk, d)[slot].double(), k64, rtol=4 * tol, atol=4 * tol)
    torch.testing.assert_close(vc_ref.view(-1, hk, d)[slot].double(), qkv[:, hq + hk :], rtol=4 * tol, atol=4 * tol)


def test_pending_norm_input_float8_cache_and_padding_slot():
    x, weight, _, pos, table, (kc, vc), slot = _case(4, 2, 16, 64, torch.bfloat16, seed=7, cache_dtype=torch.float8_e4m3fn)
    pending = PendingNorm(x, torch.rand(64) + 0.5, 1e-5)
    kc_ref, vc_ref = kc.clone(), vc.clone()
    want = qkv_rope_store_ref(pending, weight, None, 4, 2, pos, table, kc_ref, vc_ref, slot, 0.5, 2.0)
    got = qkv_rope_store_triton(pending, weight, None, 4, 2, pos, table, kc, vc, slot, 0.5, 2.0)
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    # float8 values may round to neighbours where the inputs differ in their last bit
    torch.testing.assert_close(kc.float(), kc_ref.float(), rtol=0.13, atol=0.02)
    torch.testing.assert_close(vc.float(), vc_ref.float(), rtol=0.13, atol=0.02)
    before = kc.clone()
    qkv_rope_store_triton(x, weight, None, 4, 2, pos, table, kc, vc, torch.tensor([-1]))  # a padding token
    assert torch.equal(kc.view(torch.uint8), before.view(torch.uint8))


def test_runs_only_where_the_fused_path_does(monkeypatch):
    x, weight, _, pos, table, (kc, vc), slot = _case(4, 2, 16, 64, torch.float32, seed=3)
    assert qkv_rope_store(x, weight, None, 4, 2, pos, table, kc, vc, slot) is None  # CPU tensors, PyTorch path
    monkeypatch.setattr(dispatch, "_triton_on_cpu", lambda: True)
    assert qkv_rope_store(x, weight, None, 4, 2, pos, table, kc, vc, slot) is not None
    half_table = table[:, :8]  # partial rotary: not whole heads
    assert qkv_rope_store(x, weight, None, 4, 2, pos, half_table, kc, vc, slot) is None
    assert qkv_rope_store(torch.cat([x, x]), weight, None, 4, 2, pos, table, kc, vc, slot) is None  # two tokens
