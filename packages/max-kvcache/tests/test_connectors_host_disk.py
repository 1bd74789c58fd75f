import importlib.util
import os
from pathlib import Path

import pytest
import torch

from max_kvcache import KVCacheManager, KVCacheSpec, PagedKVCache, hash_request_blocks
from max_kvcache.connectors import create_connector
from max_kvcache.connectors.record import RECORD_OVERHEAD, encode_block
from max_config.errors import ConfigError

FORMATS = ["float32", "bfloat16", "float8_e4m3fn"]


def _spec(fmt="float32"):
    return KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype=fmt)


def _manager(spec, connector, num_blocks=16, kv_scale=0.5):
    cache = PagedKVCache(spec, num_blocks)
    for scale in cache.k_scales + cache.v_scales:  # float8: scales as a model would load them
        scale.fill_(kv_scale)
    return KVCacheManager(cache, connector=connector)


def _bytes(manager, req, num_blocks):
    return manager.kv_cache.pack_blocks(manager.block_ids(req)[:num_blocks])


def test_factory_rejects_bad_names_and_keys():
    spec = _spec()
    with pytest.raises(ConfigError, match="--kv-connector must be one of"):
        create_connector("redis", {}, spec)
    with pytest.raises(ConfigError, match="unknown key 'host_size'"):
        create_connector("local", {"host_size": 1}, spec)
    with pytest.raises(ConfigError, match='needs "url"'):
        create_connector("dkv", {}, spec)
    with pytest.raises(ConfigError, match="holds no block"):
        create_connector("local", {"host_bytes": 10}, spec)
    assert create_connector(None, None, spec).lookup([b"x" * 16]) == 0


def test_lmcache_without_the_package_names_the_extra():
    if importlib.util.find_spec("lmcache") is not None:
        pytest.skip("lmcache is installed here; this checks the message shown without it")
    with pytest.raises(ConfigError, match=r"pip install max-kvcache\[lmcache\]"):
        create_connector("lmcache", {}, _spec())


def test_connector_needs_prefix_caching():
    spec = _spec()
    with pytest.raises(ValueError, match="--enable-prefix-caching"):
        KVCacheManager(PagedKVCache(spec, 4), enable_prefix_caching=False,
                       connector=create_connector("local", {"host_bytes": 2**20}, spec))


@pytest.mark.parametrize("fmt", FORMATS)
def test_local_host_tier_serves_blocks_evicted_from_the_device(fmt, make_request, prefill):
    spec = _spec(fmt)
    connector = create_connector("local", {"host_bytes": 8 * spec.packed_block_bytes}, spec)
    first = _manager(spec, connector)
    a = make_request("a", list(range(13)))
    prefill(first, a)
    written = _bytes(first, a, 3)
    first.free(a)  # the connector receives a's three full blocks
    assert connector.stats.saves == 3 and first.stats.connector_saves == 3
    second = _manager(spec, connector)  # a fresh device cache: only the host tier holds the blocks
    b = make_request("b", list(range(12)) + [99])
    assert prefill(second, b) == 12
    assert torch.equal(_bytes(second, b, 3), written)
    assert second.stats.connector_loads == 3 and second.stats.connector_hits == 12


def test_host_tier_evicts_least_recently_used(make_request, prefill):
    spec = _spec()
    connector = create_connector("local", {"host_bytes": 2 * spec.packed_block_bytes}, spec)
    manager = _manager(spec, connector)
    for name, base in (("a", 0), ("b", 100)):
        req = make_request(name, list(range(base, base + 5)))
        prefill(manager, req)
        manager.free(req)
    req = make_request("c", list(range(200, 209)))  # two blocks: evicts a's, then b's
    prefill(manager, req)
    manager.free(req)
    assert connector.stats.evictions == 2 and len(connector.host) == 2
    fresh = _manager(spec, connector)
    assert fresh.get_computed_tokens(make_request("a2", list(range(5)))) == 0
    assert fresh.get_computed_tokens(make_request("c2", list(range(200, 209)))) == 8


def _tiered(spec, tmp_path, fingerprint="model-a", **extra):
    config = {"host_bytes": 4 * spec.packed_block_bytes, "disk_dir": str(tmp_path), **extra}
    return create_connector("tiered", config, spec, fingerprint)


@pytest.mark.parametrize("fmt", FORMATS)
def test_device_host_disk_round_trip_is_bit_exact(fmt, tmp_path, make_request, prefill):
    spec = _spec(fmt)
    writer = _tiered(spec, tmp_path)
    first = _manager(spec, writer)
    a = make_request("a", list(range(17)))
    prefill(first, a)
    written = _bytes(first, a, 4)
    first.free(a)
    writer.close()
    assert len(list(tmp_path.rglob("*.kvb"))) == 4
    reader = _tiered(spec, tmp_path)  # empty host tier: every block comes from disk
    second = _manager(spec, reader)
    b = make_request("b", list(range(17)))
    assert prefill(second, b) == 16
    assert torch.equal(_bytes(second, b, 4), written)
    assert reader.stats.loads == 4 and len(reader.host) == 4  # promoted to host
    if spec.is_fp8:  # a cache with other float8 scales must not decode these bytes
        other = _tiered(spec, tmp_path)
        rescaled = _manager(spec, other, kv_scale=0.25)
        assert rescaled.get_computed_tokens(make_request("c", list(range(17)))) == 0
        assert other.stats.corrupt == 1


def test_other_model_or_format_never_reads_the_blocks(tmp_path, make_request, prefill):
    spec = _spec()
    writer = _tiered(spec, tmp_path)
    manager = _manager(spec, writer)
    a = make_request("a", list(range(9)))
    prefill(manager, a)
    manager.free(a)
    writer.close()
    for other_spec, fingerprint in ((spec, "model-b"), (_spec("bfloat16"), "model-a")):
        other = _manager(other_spec, _tiered(other_spec, tmp_path, fingerprint))
        assert other.get_computed_tokens(make_request("b", list(range(9)))) == 0


def _corrupt_truncate(path, _spec, _hash):
    path.write_bytes(path.read_bytes()[:-7])


def _corrupt_flip(path, _spec, _hash):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _corrupt_foreign(path, spec, block_hash):
    other = create_connector("null", {}, spec, "another-model").namespace
    path.write_bytes(encode_block(other, block_hash, bytes(spec.bytes_per_block)))


def _corrupt_garbage(path, _spec, _hash):
    path.write_bytes(b"not a block")


@pytest.mark.parametrize("damage", [_corrupt_truncate, _corrupt_flip, _corrupt_foreign, _corrupt_garbage])
def test_damaged_block_files_are_skipped_counted_and_recomputed(damage, tmp_path, make_request, prefill):
    spec = _spec()
    writer = _tiered(spec, tmp_path)
    first = _manager(spec, writer)
    a = make_request("a", list(range(13)))
    prefill(first, a)
    written = _bytes(first, a, 3)
    hashes = list(first._hashes["a"])
    first.free(a)
    writer.close()
    damage(writer.disk.path(hashes[1]), spec, hashes[1])
    reader = _tiered(spec, tmp_path)
    second = _manager(spec, reader)
    b = make_request("b", list(range(13)))
    assert prefill(second, b) == 4  # block 0 from disk, block 1 rejected, the rest recomputed
    assert reader.stats.corrupt == 1 and not writer.disk.path(hashes[1]).exists()
    assert torch.equal(_bytes(second, b, 3), written)  # recomputed KV matches the original


def test_disk_budget_evicts_oldest_files(tmp_path, make_request, prefill):
    spec = _spec()
    record_bytes = spec.packed_block_bytes + RECORD_OVERHEAD
    connector = _tiered(spec, tmp_path, disk_bytes=3 * record_bytes)
    manager = _manager(spec, connector)
    req = make_request("a", list(range(21)))  # five full blocks
    prefill(manager, req)
    manager.free(req)
    connector.flush()
    assert len(list(tmp_path.rglob("*.kvb"))) == 3 and connector.disk.total_bytes == 3 * record_bytes
    assert connector.stats.evictions >= 2


def test_tiered_without_a_directory_uses_a_temporary_one(make_request, prefill):
    spec = _spec()
    connector = create_connector("tiered", {"host_bytes": 2 * spec.packed_block_bytes}, spec)
    manager = _manager(spec, connector)
    req = make_request("a", list(range(9)))
    prefill(manager, req)
    manager.free(req)
    connector.flush()
    directory = Path(connector.directory)
    assert len(list(directory.rglob("*.kvb"))) == 2
    manager.close()
    assert not directory.exists()


def test_manager_close_hands_pending_blocks_to_the_connector(tmp_path, make_request, prefill):
    spec = _spec()
    connector = _tiered(spec, tmp_path)
    manager = _manager(spec, connector)
    prefill(manager, make_request("a", list(range(9))))  # still running: its blocks wait for the next step
    assert connector.stats.saves == 0
    manager.close()
    assert connector.stats.saves == 2 and len(list(tmp_path.rglob("*.kvb"))) == 2


def test_disk_lru_order_survives_the_process(tmp_path, make_request, prefill):
    """A block read by one process is kept, and an older unread one evicted, by the next process."""
    spec = _spec()
    record_bytes = spec.packed_block_bytes + RECORD_OVERHEAD
    first = _tiered(spec, tmp_path)
    manager = _manager(spec, first)
    for name, base in (("a", 0), ("b", 100)):
        req = make_request(name, list(range(base, base + 5)))
        prefill(manager, req)
        manager.free(req)
    first.close()
    a_hash = first.disk.path(hash_request_blocks(list(range(4)), 4)[0])
    b_hash = first.disk.path(hash_request_blocks(list(range(100, 104)), 4)[0])
    os.utime(a_hash, (1, 1))  # a was written long ago ...
    os.utime(b_hash, (2, 2))
    reader = _tiered(spec, tmp_path)
    assert _manager(spec, reader).get_computed_tokens(make_request("a2", list(range(5)))) == 4  # ... but read now
    reader.close()
    third = _tiered(spec, tmp_path, disk_bytes=2 * record_bytes)
    fresh = _manager(spec, third)
    c = make_request("c", list(range(200, 205)))
    prefill(fresh, c)
    fresh.free(c)
    third.flush()
    assert a_hash.exists() and not b_hash.exists()
