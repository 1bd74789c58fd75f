"""Random admit / decode / preempt / finish sequences keep the block bookkeeping and the KV exact."""

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from max_kvcache import KVCacheManager, KVCacheSpec, PagedKVCache, build_slot_mapping
from max_kvcache.connectors import create_connector

SPEC = KVCacheSpec(num_layers=1, num_kv_heads=1, head_dim=2, page_size=2, dtype="float32")
NUM_BLOCKS = 10


@dataclass
class Req:
    request_id: str
    all_token_ids: list[int]
    num_prompt_tokens: int
    num_computed_tokens: int = 0
    extra_keys: tuple = field(default_factory=tuple)


def expected_kv(req: Req, pos: int) -> torch.Tensor:
    """What a model would write at `pos`: a function of the tokens up to it and the extra keys."""
    digest = hashlib.sha256(repr((req.extra_keys, req.all_token_ids[: pos + 1])).encode()).digest()
    return torch.tensor([int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")],
                        dtype=torch.float32).reshape(1, 2)


class ManagerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.cache = PagedKVCache(SPEC, NUM_BLOCKS)
        self.manager = KVCacheManager(self.cache, watermark=1.0)
        self.waiting: list[Req] = []
        self.running: list[Req] = []
        self.count = 0

    def _run(self, req: Req, num_new: int) -> None:
        """The model's forward pass: write KV for the newly computed tokens."""
        start = req.num_computed_tokens
        slots = build_slot_mapping([self.manager.block_ids(req)], [start], [num_new], SPEC.page_size)
        kv = torch.stack([expected_kv(req, p) for p in range(start, start + num_new)])
        self.cache.store(0, kv, -kv, slots)
        req.num_computed_tokens += num_new

    @rule(prompt=st.lists(st.integers(0, 2), min_size=1, max_size=7), salt=st.sampled_from([(), ("a",)]))
    def arrive(self, prompt, salt):
        self.count += 1
        self.waiting.append(Req(f"r{self.count}", list(prompt), len(prompt), extra_keys=salt))

    @precondition(lambda self: self.waiting)
    @rule(data=st.data())
    def admit(self, data):
        req = self.waiting.pop(data.draw(st.integers(0, len(self.waiting) - 1)))
        hit = self.manager.get_computed_tokens(req)
        assert hit % SPEC.page_size == 0 and hit < len(req.all_token_ids)
        k, v = self.cache.gather_tokens(0, self.manager.block_ids(req), hit)
        for pos in range(hit):
            assert torch.equal(k[pos], expected_kv(req, pos)) and torch.equal(v[pos], -expected_kv(req, pos))
        req.num_computed_tokens = hit
        if self.manager.allocate_slots(req, len(req.all_token_ids) - hit):
            self._run(req, len(req.all_token_ids) - hit)
            self.running.append(req)
        else:
            self.manager.free(req)
            req.num_computed_tokens = 0
            self.waiting.append(req)

    @precondition(lambda self: self.running)
    @rule(data=st.data(), token=st.integers(0, 2), lookahead=st.integers(0, 3))
    def decode(self, data, token, lookahead):
        req = self.running[data.draw(st.integers(0, len(self.running) - 1))]
        req.all_token_ids.append(token)
        if self.manager.allocate_slots(req, 1, lookahead):
            self._run(req, 1)
        else:
            req.all_token_ids.pop()

    @precondition(lambda self: self.running)
    @rule(data=st.data(), finish=st.booleans())
    def free(self, data, finish):
        req = self.running.pop(data.draw(st.integers(0, len(self.running) - 1)))
        self.manager.free(req)
        if not finish:  # preempted: back to waiting, recomputed from its cached prefix
            req.num_computed_tokens = 0
            self.waiting.append(req)

    @invariant()
    def bookkeeping_is_consistent(self):
        pool = self.manager.pool
        held = Counter(b for req in self.running for b in self.manager.block_ids(req))
        assert 0 not in held
        for block in pool.blocks[1:]:
            assert block.ref_cnt == held[block.block_id], block
        free_ids = [b.block_id for b in pool.free_queue]
        assert len(free_ids) == pool.num_free == len(set(free_ids))
        assert set(free_ids) == {b.block_id for b in pool.blocks[1:] if b.ref_cnt == 0}
        assert all(pool.cached[b.block_hash] is b for b in pool.blocks if b.block_hash is not None)
        assert len(pool.cached) == sum(b.block_hash is not None for b in pool.blocks)

    def teardown(self):
        for req in self.running:
            self.manager.free(req)
        assert self.manager.num_free_blocks == NUM_BLOCKS - 1


ManagerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestManagerMachine = ManagerMachine.TestCase


class ManagerWithHostTierMachine(ManagerMachine):
    """The same sequences with a small host tier behind the device: loaded blocks must be exact too."""

    def __init__(self):
        super().__init__()
        connector = create_connector("local", {"host_bytes": 4 * SPEC.packed_block_bytes}, SPEC)
        self.manager = KVCacheManager(self.cache, watermark=1.0, connector=connector)

    def teardown(self):
        super().teardown()
        stats = self.manager.stats
        assert stats.connector_loads <= self.manager.connector.stats.hits


ManagerWithHostTierMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestManagerWithHostTierMachine = ManagerWithHostTierMachine.TestCase
