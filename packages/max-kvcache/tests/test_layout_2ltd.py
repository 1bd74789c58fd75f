import pytest
import torch

from max_kvcache import KVCacheSpec, PagedKVCache, build_slot_mapping
from max_kvcache.connectors.layout import gather_2ltd, scatter_2ltd


@pytest.mark.parametrize("fmt", ["float32", "bfloat16", "float8_e4m3fn"])
def test_token_major_gather_and_scatter_round_trip(fmt):
    torch.manual_seed(0)
    spec = KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype=fmt)
    src = PagedKVCache(spec, 6)
    slots = build_slot_mapping([[4, 2]], [0], [7], spec.page_size)
    for layer in range(2):
        src.store(layer, torch.randn(7, 2, 8), torch.randn(7, 2, 8), slots)
    data = gather_2ltd(src, slots)
    assert data.shape == (2, 2, 7, 16) and data.dtype == spec.dtype
    for layer in range(2):  # independent reference: the cache read block by block
        k, v = src.k_caches[layer], src.v_caches[layer]
        expected_k = torch.cat([k[4], k[2]])[:7].reshape(7, 16)
        expected_v = torch.cat([v[4], v[2]])[:7].reshape(7, 16)
        assert torch.equal(data[0, layer].view(torch.uint8), expected_k.view(torch.uint8))
        assert torch.equal(data[1, layer].view(torch.uint8), expected_v.view(torch.uint8))
    dst = PagedKVCache(spec, 6)
    moved = build_slot_mapping([[1, 5]], [0], [7], spec.page_size)
    scatter_2ltd(dst, moved, data)
    for layer in range(2):
        assert torch.equal(dst.gather_tokens(layer, [1, 5], 7)[0], src.gather_tokens(layer, [4, 2], 7)[0])
        assert torch.equal(dst.gather_tokens(layer, [1, 5], 7)[1], src.gather_tokens(layer, [4, 2], 7)[1])


def test_lmcache_gpu_connector_moves_kv_through_a_memory_object():
    from types import SimpleNamespace

    from max_kvcache.connectors.lmcache_adapter import PagedCacheGPUConnector

    spec = KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype="bfloat16")
    src, dst = PagedKVCache(spec, 4), PagedKVCache(spec, 4)
    for layer in range(2):
        src.store(layer, torch.randn(4, 2, 8), torch.randn(4, 2, 8), torch.arange(8, 12))
    connector = PagedCacheGPUConnector(spec, kv_2ltd_format="KV_2LTD")
    buffer = torch.empty(connector.get_shape(4), dtype=spec.dtype)
    obj = SimpleNamespace(tensor=buffer, metadata=SimpleNamespace(fmt=None))  # LMCache's MemoryObj fields
    connector.batched_from_gpu([obj], [0], [4], kvcaches=src, slot_mapping=torch.arange(8, 12))
    assert obj.metadata.fmt == "KV_2LTD"
    connector.batched_to_gpu([obj], [0], [4], kvcaches=dst, slot_mapping=torch.arange(4, 8))
    for layer in range(2):
        assert torch.equal(dst.k_caches[layer][1], src.k_caches[layer][2])
        assert torch.equal(dst.v_caches[layer][1], src.v_caches[layer][2])
