import pytest
import torch

from max_kvcache import KVCacheManager, KVCacheSpec, PagedKVCache, build_slot_mapping

SPEC = KVCacheSpec(num_layers=2, num_kv_heads=2, head_dim=8, page_size=4, dtype="float32")


def _admit(manager, req):
    """What a scheduler does for a new request: prefix hit, then slots for the rest of the prompt."""
    req.num_computed_tokens = manager.get_computed_tokens(req)
    assert manager.allocate_slots(req, len(req.all_token_ids) - req.num_computed_tokens)
    req.num_computed_tokens = len(req.all_token_ids)


def test_second_request_hits_the_shared_full_blocks(make_request):
    manager = KVCacheManager(SPEC, num_blocks=16)
    a = make_request("a", list(range(10)))
    _admit(manager, a)
    assert len(manager.block_ids(a)) == 3
    b = make_request("b", list(range(8)) + [50, 51, 52])
    assert manager.get_computed_tokens(b) == 8
    assert manager.block_ids(b) == manager.block_ids(a)[:2]
    b.num_computed_tokens = 8
    assert manager.allocate_slots(b, 3)
    assert manager.stats.hits == 8 and manager.stats.queries == 21


def test_last_token_is_always_recomputed(make_request):
    manager = KVCacheManager(SPEC, num_blocks=16)
    _admit(manager, make_request("a", list(range(8))))
    assert manager.get_computed_tokens(make_request("b", list(range(8)))) == 4
    assert manager.get_computed_tokens(make_request("c", list(range(9)))) == 8


def test_extra_keys_separate_prefixes(make_request):
    manager = KVCacheManager(SPEC, num_blocks=16)
    _admit(manager, make_request("a", list(range(9)), extra_keys=("lora-1",)))
    assert manager.get_computed_tokens(make_request("b", list(range(9)), extra_keys=("lora-2",))) == 0
    assert manager.get_computed_tokens(make_request("c", list(range(9)))) == 0
    assert manager.get_computed_tokens(make_request("d", list(range(9)), extra_keys=("lora-1",))) == 8


def test_disabled_prefix_caching_never_hits(make_request):
    manager = KVCacheManager(SPEC, num_blocks=16, enable_prefix_caching=False)
    _admit(manager, make_request("a", list(range(9))))
    assert manager.get_computed_tokens(make_request("b", list(range(9)))) == 0
    assert not manager.pool.cached and manager.stats.hits == 0


def test_decode_appends_blocks_and_lookahead_reserves_slots(make_request):
    manager = KVCacheManager(SPEC, num_blocks=8)
    req = make_request("a", list(range(4)))
    _admit(manager, req)
    assert len(manager.block_ids(req)) == 1
    req.all_token_ids.append(100)
    assert manager.allocate_slots(req, 1, num_lookahead=3)
    assert len(manager.block_ids(req)) == 2  # 4 + 1 + 3 = 8 slots
    assert manager.allocate_slots(req, 1, num_lookahead=4)
    assert len(manager.block_ids(req)) == 3


def test_failed_allocation_changes_nothing(make_request):
    manager = KVCacheManager(SPEC, num_blocks=4)  # 3 usable blocks
    a = make_request("a", list(range(8)))
    _admit(manager, a)
    b = make_request("b", list(range(100, 109)))
    assert manager.get_computed_tokens(b) == 0
    assert not manager.allocate_slots(b, 9)
    assert manager.block_ids(b) == [] and manager.num_free_blocks == 1


def test_preempted_request_hits_its_own_blocks_on_readmission(make_request):
    manager = KVCacheManager(SPEC, num_blocks=8)
    req = make_request("a", list(range(6)))
    _admit(manager, req)
    for token in (6, 7, 8):  # decode three tokens
        req.all_token_ids.append(token)
        assert manager.allocate_slots(req, 1)
        req.num_computed_tokens += 1
    before = manager.block_ids(req)
    manager.free(req)  # preempt
    assert manager.usage == 0.0
    req.num_computed_tokens = 0
    assert manager.get_computed_tokens(req) == 8
    assert manager.block_ids(req) == before[:2]


def test_freed_blocks_stay_cached_until_reused_lru(make_request):
    manager = KVCacheManager(SPEC, num_blocks=4)  # 3 usable blocks
    a = make_request("a", list(range(9)))
    _admit(manager, a)
    manager.free(a)
    b = make_request("b", list(range(100, 105)))  # needs 2 blocks: evicts a's last two, in reverse
    _admit(manager, b)
    manager.free(b)
    assert manager.get_computed_tokens(make_request("c", list(range(9)))) == 4
    assert manager.stats.evictions == 1


def test_watermark_admission(make_request):
    manager = KVCacheManager(SPEC, num_blocks=11, watermark=0.5)  # 10 usable blocks
    assert manager.can_admit(400)  # nothing active: always
    _admit(manager, make_request("a", list(range(12))))  # 3 blocks
    assert manager.can_admit(8) and not manager.can_admit(9)
    with pytest.raises(ValueError, match="--kvcache-ce-watermark"):
        KVCacheManager(SPEC, num_blocks=11, watermark=1.5)


def test_hit_serves_the_kv_written_by_the_first_request(make_request):
    torch.manual_seed(0)
    cache = PagedKVCache(SPEC, num_blocks=8)
    manager = KVCacheManager(cache)
    a = make_request("a", list(range(9)))
    _admit(manager, a)
    key, value = torch.randn(9, 2, 8), torch.randn(9, 2, 8)
    cache.store(0, key, value, build_slot_mapping([manager.block_ids(a)], [0], [9], SPEC.page_size))
    b = make_request("b", list(range(8)) + [77])
    hit = manager.get_computed_tokens(b)
    k, v = cache.gather_tokens(0, manager.block_ids(b), hit)
    assert torch.equal(k, key[:8]) and torch.equal(v, value[:8])


def test_shared_system_prompt_hit_accounting(make_request):
    spec = KVCacheSpec(num_layers=1, num_kv_heads=1, head_dim=8, page_size=16)
    manager = KVCacheManager(spec, num_blocks=300)
    system = list(range(2000))
    _admit(manager, make_request("a", system + [5000, 5001]))
    b = make_request("b", system + [6000, 6001, 6002])
    assert manager.get_computed_tokens(b) == 2000  # 125 full blocks
    assert manager.stats.queries == 2002 and manager.stats.hits == 0  # b is not admitted yet
    assert manager.get_computed_tokens(b) == 2000  # a retry is not counted twice
    assert manager.allocate_slots(b, 3)
    assert manager.stats.queries == 2002 + 2003 and manager.stats.hits == 2000
    assert manager.stats.hit_rate == pytest.approx(2000 / 4005)
