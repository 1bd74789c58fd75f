"""The dkv connector against a real redis-server started for these tests."""

import shutil
import socket
import subprocess
import time

import pytest
import redis
import torch

from max_kvcache import KVCacheManager, KVCacheSpec, PagedKVCache
from max_kvcache.connectors import create_connector

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not on PATH (install the redis-server package)"
)
FORMATS = ["float32", "bfloat16", "float8_e4m3fn"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")


@pytest.fixture
def redis_url():
    port = _free_port()
    proc = _start_server(port)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


def _spec(fmt="float32"):
    return KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype=fmt)


def _manager(spec, url, fingerprint="model-a", retry_s=5.0):
    connector = create_connector("dkv", {"url": url, "timeout_s": 0.5, "retry_s": retry_s}, spec, fingerprint)
    return KVCacheManager(PagedKVCache(spec, 16), connector=connector)


@pytest.mark.parametrize("fmt", FORMATS)
def test_blocks_travel_between_managers_through_the_store(fmt, redis_url, make_request, prefill):
    url, _ = redis_url
    spec = _spec(fmt)
    first = _manager(spec, url)
    a = make_request("a", list(range(13)))
    prefill(first, a)
    written = first.kv_cache.pack_blocks(first.block_ids(a)[:3])
    first.free(a)
    assert first.connector.stats.saves == 3
    second = _manager(spec, url)
    b = make_request("b", list(range(13)))
    assert prefill(second, b) == 12
    assert torch.equal(second.kv_cache.pack_blocks(second.block_ids(b)[:3]), written)
    other = _manager(spec, url, fingerprint="model-b")
    assert other.get_computed_tokens(make_request("c", list(range(13)))) == 0


def test_corrupt_value_is_rejected(redis_url, make_request, prefill):
    url, _ = redis_url
    spec = _spec()
    first = _manager(spec, url)
    a = make_request("a", list(range(9)))
    prefill(first, a)
    hashes = list(first._hashes["a"])
    first.free(a)
    client = redis.Redis.from_url(url)
    key = first.connector.store_key(hashes[0])
    client.set(key, client.get(key)[:-1] + b"\x00")
    second = _manager(spec, url)
    assert second.get_computed_tokens(make_request("b", list(range(9)))) == 0
    assert second.connector.stats.corrupt == 1


def test_generation_goes_on_when_the_server_goes_away(redis_url, make_request, prefill):
    url, proc = redis_url
    spec = _spec()
    manager = _manager(spec, url)
    a = make_request("a", list(range(9)))
    prefill(manager, a)
    proc.kill()
    proc.wait()
    manager.free(a)  # the save fails quietly
    fresh = _manager(spec, url)
    b = make_request("b", list(range(100, 109)))
    assert prefill(fresh, b) == 0  # lookup fails: a miss, recomputed
    fresh.free(b)  # within retry_s of the failure: the save is not even tried
    assert manager.connector.stats.errors == 1 and fresh.connector.stats.errors == 1
    eager = _manager(spec, url, retry_s=0.0)
    c = make_request("c", list(range(200, 209)))
    assert prefill(eager, c) == 0
    eager.free(c)
    assert eager.connector.stats.errors == 2 and eager.connector.stats.saves == 0
