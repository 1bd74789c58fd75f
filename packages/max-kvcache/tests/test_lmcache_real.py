"""The `lmcache` connector against the real LMCache package (skipped where it is not installed)."""

import pytest

pytest.importorskip("lmcache")

import torch  # noqa: E402

from max_kvcache import KVCacheSpec, PagedKVCache, hash_request_blocks  # noqa: E402
from max_kvcache.connectors import create_connector  # noqa: E402

SETTINGS = {"max_local_cpu_size": 0.01}  # GiB of LMCache's host memory


@pytest.fixture(autouse=True)
def _no_usage_reports(monkeypatch):
    monkeypatch.setenv("LMCACHE_TRACK_USAGE", "false")


def _filled_cache(spec, num_blocks=8):
    cache = PagedKVCache(spec, num_blocks)
    for k, v in zip(cache.k_caches, cache.v_caches):
        k.copy_(torch.randn(k.shape).to(spec.dtype))
        v.copy_(torch.randn(v.shape).to(spec.dtype))
    return cache


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


@pytest.mark.parametrize("fmt", ["float32", "bfloat16"])
def test_blocks_round_trip_through_lmcache_bit_exact(fmt):
    torch.manual_seed(0)
    spec = KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype=fmt)
    hashes = hash_request_blocks(list(range(100, 112)), spec.page_size)
    src = _filled_cache(spec)
    connector = create_connector("lmcache", SETTINGS, spec, "model-a")
    other = create_connector("lmcache", SETTINGS, spec, "model-b")
    try:
        assert connector.lookup(hashes) == 0
        connector.save(hashes[:2], [1, 2], src)
        assert connector.lookup(hashes) == 2  # the leading run only: block 3 was never saved
        connector.save(hashes[2:], [3], src)
        assert connector.lookup(hashes) == 3
        assert connector.lookup(hashes[1:]) == 2  # a run that starts past the first block

        dst = PagedKVCache(spec, 8)
        assert connector.load(hashes, [5, 6, 7], dst) == 3
        for layer in range(spec.num_layers):
            assert _same_bits(dst.k_caches[layer][[5, 6, 7]], src.k_caches[layer][[1, 2, 3]])
            assert _same_bits(dst.v_caches[layer][[5, 6, 7]], src.v_caches[layer][[1, 2, 3]])
            assert not dst.k_caches[layer][[0, 1, 2, 3, 4]].any()  # nothing else was written

        assert other.lookup(hashes) == 0  # another model's fingerprint sees none of it
        assert other.load(hashes, [5], PagedKVCache(spec, 8)) == 0
        stats = connector.stats
        assert (stats.saves, stats.loads, stats.errors) == (3, 3, 0)
        assert stats.hits == 2 + 3 + 2
    finally:
        connector.close()
        other.close()
    from lmcache.v1.cache_engine import LMCacheEngineBuilder

    assert LMCacheEngineBuilder.get(connector.instance_id) is None
    assert LMCacheEngineBuilder.get(other.instance_id) is None


def test_lmcache_failures_are_counted_and_answered_as_misses():
    spec = KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype="float32")
    hashes = hash_request_blocks(list(range(8)), spec.page_size)
    connector = create_connector("lmcache", SETTINGS, spec, "model-a")
    try:
        connector.save(hashes, [0, 99], _filled_cache(spec))  # block 99 lies outside the cache
        assert connector.stats.errors == 1
        assert connector.lookup(hashes) == 1
        assert connector.load(hashes[:1], [42], PagedKVCache(spec, 8)) == 0
        assert connector.stats.errors == 2
    finally:
        connector.close()
