import pytest
import torch
from max_kernels.fp8 import quantize_fp8_ref
from max_kernels.kv_store import store_kvcache, store_kvcache_ref, store_kvcache_triton


def _case(t, n, page, hk, d, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    key, value = torch.randn(t, hk, d, generator=g).to(dtype), torch.randn(t, hk, d, generator=g).to(dtype)
    slots = torch.randperm(n * page, generator=g)[:t].to(torch.int64)
    slots[torch.rand(t, generator=g) < 0.3] = -1
    k_cache, v_cache = (
        torch.randn(n, page, hk, d, generator=g).to(dtype),
        torch.randn(n, page, hk, d, generator=g).to(dtype),
    )
    return key, value, k_cache, v_cache, slots


@pytest.mark.parametrize("t,n,page", [(7, 9, 1), (5, 2, 16), (9, 2, 256), (0, 2, 4)])
def test_ref_writes_each_token_to_its_slot(t, n, page):
    key, value, k_cache, v_cache, slots = _case(t, n, page, 2, 8, seed=t)
    k_before, v_before = k_cache.clone(), v_cache.clone()
    store_kvcache(key, value, k_cache, v_cache, slots)
    k_want, v_want = k_before.reshape(-1, 2, 8), v_before.reshape(-1, 2, 8)
    for i, s in enumerate(slots.tolist()):
        if s >= 0:
            k_want[s], v_want[s] = key[i], value[i]
    assert torch.equal(k_cache.reshape(-1, 2, 8), k_want)
    assert torch.equal(v_cache.reshape(-1, 2, 8), v_want)


@pytest.mark.parametrize("t,n,page,hk,d", [(7, 9, 1, 2, 8), (5, 3, 16, 3, 20), (9, 2, 256, 2, 16), (0, 2, 4, 2, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_matches_twin(t, n, page, hk, d, dtype):
    key, value, k_cache, v_cache, slots = _case(t, n, page, hk, d, seed=10 + t, dtype=dtype)
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    store_kvcache_ref(key, value, k_ref, v_ref, slots)
    store_kvcache_triton(key, value, k_cache, v_cache, slots.to(torch.int32))
    assert torch.equal(k_cache, k_ref) and torch.equal(v_cache, v_ref)


@pytest.mark.parametrize("t,page", [(6, 1), (5, 16)])
def test_float8_cache_stores_quantized_values(t, page):
    key, value, _, _, slots = _case(t, 8, page, 2, 16, seed=20 + t)
    key, value = key * 30, value * 30
    k_cache = torch.zeros(8, page, 2, 16, dtype=torch.float8_e4m3fn)
    v_cache = torch.zeros(8, page, 2, 16, dtype=torch.float8_e4m3fn)
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    store_kvcache_ref(key, value, k_ref, v_ref, slots, 0.5, torch.tensor(2.0))
    keep = slots >= 0
    stored = k_ref.reshape(-1, 2, 16)[slots[keep]]
    assert torch.equal(stored.view(torch.uint8), quantize_fp8_ref(key[keep], 0.5).view(torch.uint8))
    store_kvcache_triton(key, value, k_cache, v_cache, slots, 0.5, torch.tensor(2.0))
    assert torch.equal(k_cache.view(torch.uint8), k_ref.view(torch.uint8))
    assert torch.equal(v_cache.view(torch.uint8), v_ref.view(torch.uint8))


def test_valid_slots_skip_the_check_and_store_the_same():
    key, value, k_cache, v_cache, slots = _case(6, 4, 4, 2, 8, seed=3)
    slots = torch.randperm(16)[:6]
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    store_kvcache(key, value, k_ref, v_ref, slots)
    store_kvcache(key, value, k_cache, v_cache, slots, slots_valid=True)
    assert torch.equal(k_cache, k_ref) and torch.equal(v_cache, v_ref)
