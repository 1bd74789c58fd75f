import pytest
import torch

from max_kvcache import KVCacheSpec, PagedKVCache, build_block_tables, build_slot_mapping
from max_kvcache.paged_cache import scatter_rows

FORMATS = ["float32", "bfloat16", "float8_e4m3fn"]


def _spec(fmt: str) -> KVCacheSpec:
    return KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype=fmt)


def test_layout_and_null_block():
    cache = PagedKVCache(_spec("bfloat16"), num_blocks=5)
    assert len(cache.k_caches) == len(cache.v_caches) == 2
    assert cache.k_caches[0].shape == (5, 4, 2, 8) and cache.k_caches[0].dtype == torch.bfloat16
    assert not cache.k_scales
    fp8 = PagedKVCache(_spec("float8_e4m3fn"), num_blocks=5)
    assert fp8.k_caches[1].dtype == torch.float8_e4m3fn and fp8.k_scales[1].tolist() == [1.0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_store_then_gather_returns_the_tokens(fmt):
    torch.manual_seed(0)
    cache = PagedKVCache(_spec(fmt), num_blocks=6)
    if cache.spec.is_fp8:
        cache.k_scales[1].fill_(0.25)
        cache.v_scales[1].fill_(0.5)
    blocks = [3, 1, 5]
    key, value = torch.randn(10, 2, 8), torch.randn(10, 2, 8)
    slots = build_slot_mapping([blocks], [0], [10], page_size=4)
    assert slots.tolist() == [12, 13, 14, 15, 4, 5, 6, 7, 20, 21]
    cache.store(1, key, value, slots)
    k, v = cache.gather_tokens(1, blocks, 10, dtype=torch.float32)
    if fmt == "float8_e4m3fn":
        # e4m3 keeps 3 mantissa bits (relative error <= 2**-4); subnormals are spaced 2**-9 * scale
        for got, ref, scale in ((k, key, 0.25), (v, value, 0.5)):
            bound = ref.double().abs() * 2**-4 + 2**-10 * scale
            assert ((got.double() - ref.double()).abs() <= bound).all()
            assert not torch.equal(got, ref)  # it really went through float8
    else:
        assert torch.equal(k, key.to(cache.spec.dtype).float()) and torch.equal(v, value.to(cache.spec.dtype).float())
    assert torch.count_nonzero(cache.k_caches[0].float()) == 0  # other layer untouched


def test_negative_slots_are_skipped():
    cache = PagedKVCache(_spec("float32"), num_blocks=4)
    key = torch.ones(3, 2, 8)
    cache.store(0, key, key, torch.tensor([5, -1, 6]))
    assert cache.k_caches[0][1, 1:3].eq(1).all()
    assert cache.k_caches[0][1:].flatten(0, 1).ne(0).any(-1).any(-1).sum() == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_pack_unpack_is_bit_exact(fmt):
    torch.manual_seed(1)
    src = PagedKVCache(_spec(fmt), num_blocks=4)
    if src.spec.is_fp8:
        src.v_scales[0].fill_(0.125)
    src.store(0, torch.randn(8, 2, 8), torch.randn(8, 2, 8), torch.arange(4, 12))
    src.store(1, torch.randn(8, 2, 8), torch.randn(8, 2, 8), torch.arange(4, 12))
    data = src.pack_blocks([1, 2])
    assert data.shape == (2, src.spec.packed_block_bytes) and data.dtype == torch.uint8
    dst = PagedKVCache(_spec(fmt), num_blocks=4)
    if src.spec.is_fp8:  # rows written under other scales are refused
        assert dst.matching_rows(data) == 0
        with pytest.raises(ValueError, match="scales"):
            dst.unpack_blocks([3, 1], data)
        dst.v_scales[0].fill_(0.125)
    assert dst.matching_rows(data) == 2
    dst.unpack_blocks([3, 1], data)
    for tensors in ("k_caches", "v_caches"):
        for a, b in zip(getattr(src, tensors), getattr(dst, tensors)):
            assert torch.equal(a[1:3].view(torch.uint8), b[[3, 1]].view(torch.uint8))
    for layer in range(2):
        for fmt_kind in ("k", "v"):
            a, b = src.gather_tokens(layer, [1, 2], 8), dst.gather_tokens(layer, [3, 1], 8)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_block_tables_pad_with_the_null_block():
    tables = build_block_tables([[4, 2], [7], []], width=3)
    assert tables.dtype == torch.int32 and tables.tolist() == [[4, 2, 0], [7, 0, 0], [0, 0, 0]]
    assert build_block_tables([[1, 2, 3], [4]]).shape == (2, 3)
    with pytest.raises(ValueError):
        build_block_tables([[1, 2, 3]], width=2)


def test_scatter_rows_matches_index_copy():
    src = torch.arange(6 * 5, dtype=torch.float32).reshape(6, 5)
    index = [7, 8, 9, 2, 4, 5]  # runs of 3, 1 and 2
    ours, reference = torch.zeros(10, 5), torch.zeros(10, 5)
    scatter_rows(ours, index, src)
    reference.index_copy_(0, torch.tensor(index), src)
    assert torch.equal(ours, reference)
