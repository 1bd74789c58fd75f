import pytest

from max_kvcache import BlockPool
from max_kvcache.hashing import BlockHash


def _h(i: int) -> BlockHash:
    return BlockHash(bytes([i]) * 16)


def test_null_block_is_never_handed_out():
    pool = BlockPool(5)
    ids = [b.block_id for b in pool.get_new_blocks(4)]
    assert sorted(ids) == [1, 2, 3, 4] and pool.num_free == 0 and pool.usage == 1.0
    with pytest.raises(ValueError):
        pool.get_new_blocks(1)


def test_lru_eviction_follows_free_order():
    pool = BlockPool(7)
    a = pool.get_new_blocks(3)
    b = pool.get_new_blocks(3)
    for i, block in enumerate(a + b):
        pool.cache_full_block(block, _h(i))
    pool.free_blocks(reversed(a))  # a's last block first
    pool.free_blocks(reversed(b))
    assert [blk.block_id for blk in pool.free_queue] == [3, 2, 1, 6, 5, 4]
    # a hit on b's first block revives it; the next allocation evicts a's tail block (hash 2)
    hit = pool.get_cached_block(_h(3))
    pool.touch([hit])
    assert hit.ref_cnt == 1 and pool.num_free == 5
    new = pool.get_new_blocks(1)[0]
    assert new.block_id == 3 and pool.get_cached_block(_h(2)) is None and new.block_hash is None
    assert pool.num_evictions == 1 and pool.get_cached_block(_h(0)) is a[0]


def test_shared_block_returns_to_queue_only_after_last_reference():
    pool = BlockPool(3)
    block = pool.get_new_blocks(1)[0]
    pool.cache_full_block(block, _h(1))
    pool.touch([block])
    pool.free_blocks([block])
    assert block.ref_cnt == 1 and pool.num_free == 1
    pool.free_blocks([block])
    assert block.ref_cnt == 0 and pool.num_free == 2 and pool.get_cached_block(_h(1)) is block


def test_duplicate_hash_keeps_the_first_block_and_caching_can_be_off():
    pool = BlockPool(4)
    first, second = pool.get_new_blocks(2)
    assert pool.cache_full_block(first, _h(1))
    assert not pool.cache_full_block(second, _h(1)) and second.block_hash is None
    off = BlockPool(4, enable_caching=False)
    assert not off.cache_full_block(off.get_new_blocks(1)[0], _h(1)) and not off.cached


def test_reset_prefix_cache_only_when_idle():
    pool = BlockPool(3)
    block = pool.get_new_blocks(1)[0]
    pool.cache_full_block(block, _h(1))
    assert not pool.reset_prefix_cache()
    pool.free_blocks([block])
    assert pool.reset_prefix_cache() and pool.get_cached_block(_h(1)) is None and block.block_hash is None
