import pytest
import torch
from max_kernels.kv_store import store_kvcache_triton
from max_kernels.rope_store import rope_kv_store, rope_kv_store_ref, rope_kv_store_triton
from max_kernels.rotary import apply_rope_ref, apply_rope_triton, rope_cos_sin_cache


def _case(t, hq, hk, d, rotary_dim, page, dtype, seed, cache_dtype=None):
    """q, k, v as views of one fused projection output, as the attention layer slices them."""
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(t, hq + 2 * hk, d, generator=g).to(dtype)
    q, k, v = qkv[:, :hq], qkv[:, hq : hq + hk], qkv[:, hq + hk :]
    positions = torch.randint(0, 40, (t,), generator=g)
    table = rope_cos_sin_cache(rotary_dim, 40, 10000.0, None, "cpu")
    n = 2 + t // page + 1
    slots = torch.randperm(n * page, generator=g)[:t]
    slots[torch.rand(t, generator=g) < 0.25] = -1
    cache_dtype = cache_dtype or dtype
    k_cache = torch.randn(n, page, hk, d, generator=g).to(cache_dtype)
    v_cache = torch.randn(n, page, hk, d, generator=g).to(cache_dtype)
    return q, k, v, positions, table, k_cache, v_cache, slots


@pytest.mark.parametrize("neox", [True, False])
@pytest.mark.parametrize("rotary_dim", [16, 8])
def test_twin_equals_rope_then_store(neox, rotary_dim):
    """The twin is the two separate ops; checked here against the four-argument rope and a direct write."""
    q, k, v, pos, table, k_cache, v_cache, slots = _case(5, 4, 2, 16, rotary_dim, 4, torch.float32, seed=1)
    k_want, v_want = k_cache.clone(), v_cache.clone()
    q_rot, k_rot = apply_rope_ref(q, k, pos, table, neox)
    for i, s in enumerate(slots.tolist()):
        if s >= 0:
            k_want.view(-1, 2, 16)[s], v_want.view(-1, 2, 16)[s] = k_rot[i], v[i]
    q_out = rope_kv_store(q, k, v, pos, table, neox, k_cache, v_cache, slots)
    assert torch.equal(q_out, q_rot)
    assert torch.equal(k_cache, k_want) and torch.equal(v_cache, v_want)


@pytest.mark.parametrize(
    "t,hq,hk,d,rotary_dim,page", [(7, 4, 2, 16, 16, 4), (5, 6, 3, 20, 12, 16), (3, 8, 1, 32, 32, 1), (0, 4, 2, 16, 16, 4)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("neox", [True, False])
def test_triton_matches_twin(t, hq, hk, d, rotary_dim, page, dtype, neox):
    """Bit for bit what the separate rotate and store kernels write; the twin within rounding."""
    q, k, v, pos, table, k_cache, v_cache, slots = _case(t, hq, hk, d, rotary_dim, page, dtype, seed=t + d)
    k_sep, v_sep, k_ref, v_ref = k_cache.clone(), v_cache.clone(), k_cache.clone(), v_cache.clone()
    q_sep, k_rot = apply_rope_triton(q, k, pos, table, neox)
    store_kvcache_triton(k_rot, v, k_sep, v_sep, slots)
    want = rope_kv_store_ref(q, k, v, pos, table, neox, k_ref, v_ref, slots, None, None)
    got = rope_kv_store_triton(q, k, v, pos, table, neox, k_cache, v_cache, slots.to(torch.int32), None, None)
    assert torch.equal(got, q_sep)
    assert torch.equal(k_cache, k_sep) and torch.equal(v_cache, v_sep)
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    torch.testing.assert_close(k_cache, k_ref, rtol=tol, atol=tol)
    assert torch.equal(v_cache, v_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_float8_cache(dtype):
    q, k, v, pos, table, k_cache, v_cache, slots = _case(6, 4, 2, 16, 12, 4, dtype, seed=5, cache_dtype=torch.float8_e4m3fn)
    k, v = k * 40, v * 40
    k_sep, v_sep = k_cache.clone(), v_cache.clone()
    q_sep, k_rot = apply_rope_triton(q, k, pos, table, True)
    store_kvcache_triton(k_rot, v, k_sep, v_sep, slots, 0.5, torch.tensor(2.0))
    got = rope_kv_store_triton(q, k, v, pos, table, True, k_cache, v_cache, slots, 0.5, torch.tensor(2.0))
    assert torch.equal(got, q_sep)
    assert torch.equal(k_cache.view(torch.uint8), k_sep.view(torch.uint8))
    assert torch.equal(v_cache.view(torch.uint8), v_sep.view(torch.uint8))
