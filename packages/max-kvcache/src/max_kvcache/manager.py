"""What a scheduler sees of the KV cache: prefix hits, slot allocation, free, block tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from max_kvcache.block_pool import BlockPool, KVCacheBlock
from max_kvcache.connectors.base import KVConnector, NullConnector
from max_kvcache.hashing import BlockHash, hash_request_blocks
from max_kvcache.paged_cache import PagedKVCache
from max_kvcache.spec import KVCacheSpec


class KVRequest(Protocol):
    request_id: str
    all_token_ids: list[int]
    num_prompt_tokens: int
    num_computed_tokens: int
    extra_keys: tuple


@dataclass
class KVCacheStats:
    """Token counts over the prefix lookups of admitted requests; block counts for the rest."""

    queries: int = 0
    hits: int = 0
    connector_hits: int = 0
    evictions: int = 0
    connector_loads: int = 0
    connector_saves: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class KVCacheManager:
    """Paged block bookkeeping for requests, with prefix caching and an optional external tier.

    Lifecycle of a request: `get_computed_tokens` (on admission or re-admission after preemption;
    pins the cached prefix), then `allocate_slots` every step it is scheduled, then `free` when it
    finishes or is preempted. Full blocks are committed to the prefix cache when allocated for
    their last token (so a request batched in the same step can already hit them); the connector
    receives them on the request's next call, once written. Hence the one rule for a scheduler:
    never free a request between its `allocate_slots` and the forward pass that writes those slots.
    """

    def __init__(
        self,
        kv_cache: PagedKVCache | KVCacheSpec,
        num_blocks: int | None = None,
        enable_prefix_caching: bool = True,
        watermark: float = 0.95,
        connector: KVConnector | None = None,
    ) -> None:
        if isinstance(kv_cache, PagedKVCache):
            self.kv_cache: PagedKVCache | None = kv_cache
            self.spec = kv_cache.spec
            if num_blocks not in (None, kv_cache.num_blocks):
                raise ValueError(f"num_blocks={num_blocks} differs from the cache's {kv_cache.num_blocks}")
            num_blocks = kv_cache.num_blocks
        else:
            self.kv_cache, self.spec = None, kv_cache
            if num_blocks is None:
                raise ValueError("num_blocks is required when the manager is built from a KVCacheSpec")
        if not 0.0 < watermark <= 1.0:
            raise ValueError(f"--kvcache-ce-watermark must be in (0, 1], got {watermark}")
        self.connector = connector or NullConnector(self.spec)
        if not isinstance(self.connector, NullConnector):
            if not enable_prefix_caching:
                raise ValueError("--kv-connector needs --enable-prefix-caching: its blocks are keyed by prefix hashes")
            if self.kv_cache is None:
                raise ValueError("a KV connector needs the PagedKVCache itself, not only its spec")
        self.page_size = self.spec.page_size
        self.num_blocks = num_blocks
        self.enable_prefix_caching = enable_prefix_caching
        self.watermark = watermark
        self.pool = BlockPool(num_blocks, enable_prefix_caching)
        self._stats = KVCacheStats()
        self._blocks: dict[str, list[KVCacheBlock]] = {}
        self._hashes: dict[str, list[BlockHash]] = {}
        self._num_committed: dict[str, int] = {}
        self._pending_saves: dict[str, list[int]] = {}
        self._running: set[str] = set()
        self._pending_lookup: dict[str, tuple[int, int, int]] = {}

    @property
    def usage(self) -> float:
        """Fraction of usable blocks held by requests."""
        return self.pool.usage

    @property
    def num_free_blocks(self) -> int:
        return self.pool.num_free

    @property
    def stats(self) -> KVCacheStats:
        self._stats.evictions = self.pool.num_evictions
        return self._stats

    def block_ids(self, req: KVRequest) -> list[int]:
        return [block.block_id for block in self._blocks.get(req.request_id, [])]

    def can_admit(self, num_tokens: int) -> bool:
        """Whether `num_tokens` more tokens keep block usage within the watermark (always, when idle)."""
        if not self._running:
            return True
        usable = self.num_blocks - 1
        used = usable - self.pool.num_free
        return (used + _cdiv(num_tokens, self.page_size)) / usable <= self.watermark

    def get_computed_tokens(self, req: KVRequest) -> int:
        """Pin the longest cached prefix of `req` (device hits, then connector loads) and return its length.

        Full blocks only, and never the request's last token, which must be recomputed for its
        logits. Blocks pinned by an earlier call for the same request are released first.
        """
        self._release(req.request_id)
        if not self.enable_prefix_caching:
            return 0
        num_tokens = len(req.all_token_ids)
        hashes = self._block_hashes(req)[: (num_tokens - 1) // self.page_size]
        blocks: list[KVCacheBlock] = []
        for block_hash in hashes:
            block = self.pool.get_cached_block(block_hash)
            if block is None:
                break
            blocks.append(block)
        self.pool.touch(blocks)
        num_device = len(blocks)
        if num_device < len(hashes) and self.pool.num_free >= _cdiv(num_tokens, self.page_size) - num_device:
            blocks += self._load_from_connector(hashes[num_device:])
        self._blocks[req.request_id] = blocks
        self._num_committed[req.request_id] = len(blocks)
        self._pending_lookup[req.request_id] = (num_tokens, len(blocks), len(blocks) - num_device)
        return len(blocks) * self.page_size

    def _load_from_connector(self, hashes: list[BlockHash]) -> list[KVCacheBlock]:
        wanted = min(self.connector.lookup(hashes), len(hashes))
        if wanted == 0:
            return []
        assert self.kv_cache is not None
        new = self.pool.get_new_blocks(wanted)
        loaded = self.connector.load(hashes[:wanted], [b.block_id for b in new], self.kv_cache)
        self.pool.free_blocks(reversed(new[loaded:]))
        for block, block_hash in zip(new[:loaded], hashes):
            self.pool.cache_full_block(block, block_hash)
        self._stats.connector_loads += loaded
        return new[:loaded]

    def allocate_slots(self, req: KVRequest, num_new_tokens: int, num_lookahead: int = 0) -> bool:
        """Make room for `num_new_tokens` after `req.num_computed_tokens`, plus `num_lookahead` slots
        (speculative tokens, never cached). Returns False, changing nothing, when blocks run out."""
        rid = req.request_id
        self._flush_saves(rid)
        blocks = self._blocks.get(rid, [])
        total = req.num_computed_tokens + num_new_tokens + num_lookahead
        needed = _cdiv(total, self.page_size) - len(blocks)
        if needed > self.pool.num_free:
            return False
        if needed > 0:
            blocks = blocks + self.pool.get_new_blocks(needed)
        self._blocks[rid] = blocks
        self._running.add(rid)
        self._count_lookup(rid)
        if self.enable_prefix_caching:
            self._commit(req, min(req.num_computed_tokens + num_new_tokens, len(req.all_token_ids)))
        return True

    def _count_lookup(self, rid: str) -> None:
        """Hit statistics count a lookup once, when its request is admitted (not on every retry)."""
        lookup = self._pending_lookup.pop(rid, None)
        if lookup is not None:
            num_tokens, num_blocks, num_connector = lookup
            self._stats.queries += num_tokens
            self._stats.hits += num_blocks * self.page_size
            self._stats.connector_hits += num_connector * self.page_size

    def _commit(self, req: KVRequest, num_tokens: int) -> None:
        """Cache the request's blocks that are full once its first `num_tokens` tokens are computed."""
        rid = req.request_id
        start, end = self._num_committed.get(rid, 0), num_tokens // self.page_size
        if end <= start:
            return
        hashes, blocks = self._block_hashes(req), self._blocks[rid]
        for i in range(start, end):
            if self.pool.cache_full_block(blocks[i], hashes[i]) and not isinstance(self.connector, NullConnector):
                self._pending_saves.setdefault(rid, []).append(i)
        self._num_committed[rid] = end

    def _flush_saves(self, rid: str) -> None:
        """Hand committed blocks to the connector; called once the step that wrote them has run."""
        pending = self._pending_saves.pop(rid, None)
        if not pending:
            return
        assert self.kv_cache is not None
        hashes, blocks = self._hashes[rid], self._blocks[rid]
        self.connector.save([hashes[i] for i in pending], [blocks[i].block_id for i in pending], self.kv_cache)
        self._stats.connector_saves += len(pending)

    def free(self, req: KVRequest) -> None:
        """Release every block of `req` (finished or preempted); cached ones stay reusable until evicted."""
        self._release(req.request_id)
        self._hashes.pop(req.request_id, None)
        self._pending_lookup.pop(req.request_id, None)

    def close(self) -> None:
        """Hand every pending block to the connector and close it (files flushed, connections closed)."""
        for rid in list(self._pending_saves):
            self._flush_saves(rid)
        self.connector.close()

    def _release(self, rid: str) -> None:
        self._flush_saves(rid)
        self.pool.free_blocks(reversed(self._blocks.pop(rid, [])))
        self._num_committed.pop(rid, None)
        self._running.discard(rid)

    def _block_hashes(self, req: KVRequest) -> list[BlockHash]:
        known = self._hashes.get(req.request_id, [])
        if len(known) < len(req.all_token_ids) // self.page_size:
            known = hash_request_blocks(req.all_token_ids, self.page_size, tuple(req.extra_keys), known)
            self._hashes[req.request_id] = known
        return known
