"""A host-memory block store with LRU eviction, and the `local` connector built on it."""

from __future__ import annotations

from collections import OrderedDict

import torch

from max_kvcache.connectors.base import KVConnector, leading_run
from max_kvcache.hashing import BlockHash
from max_kvcache.paged_cache import PagedKVCache
from max_kvcache.spec import KVCacheSpec


class HostBlockStore:
    """`num_blocks` block-sized rows of host memory (pinned when the cache is on a GPU), keyed by bytes."""

    def __init__(self, num_blocks: int, bytes_per_block: int, pin_memory: bool = False) -> None:
        self.buffer = torch.empty((num_blocks, bytes_per_block), dtype=torch.uint8, pin_memory=pin_memory)
        self._slots: OrderedDict[bytes, int] = OrderedDict()
        self._free = list(range(num_blocks - 1, -1, -1))

    def __contains__(self, key: bytes) -> bool:
        return key in self._slots

    @property
    def capacity(self) -> int:
        return self.buffer.shape[0]

    def __len__(self) -> int:
        return len(self._slots)

    def put(self, keys: list[bytes], data: torch.Tensor) -> int:
        """Store rows `data[i]` (host memory) under `keys[i]`, most recent last; returns how many rows were evicted.

        Only the last `capacity` keys can stay, so earlier ones are not copied at all.
        """
        evicted = 0
        capacity = self.capacity
        for i in range(max(0, len(keys) - capacity), len(keys)):
            key = keys[i]
            if key in self._slots:
                self._slots.move_to_end(key)
                continue
            if not self._free:
                self._free.append(self._slots.popitem(last=False)[1])
                evicted += 1
            self._slots[key] = slot = self._free.pop()
            self.buffer[slot].copy_(data[i])
        return evicted + max(0, len(keys) - capacity)

    def get(self, keys: list[bytes]) -> torch.Tensor:
        """The rows of `keys` (all present), marking them most recently used."""
        for key in keys:
            self._slots.move_to_end(key)
        return self.buffer.index_select(0, torch.tensor([self._slots[k] for k in keys], dtype=torch.int64))


class LocalConnector(KVConnector):
    """Committed blocks are copied to host memory and copied back on a prefix hit."""

    name = "local"

    def __init__(self, spec: KVCacheSpec, model_fingerprint: str, num_host_blocks: int) -> None:
        super().__init__(spec, model_fingerprint)
        self.host = HostBlockStore(num_host_blocks, spec.packed_block_bytes, pin_memory=spec.device.type == "cuda")

    def _held_run(self, block_hashes: list[BlockHash]) -> int:
        return leading_run(self.key(h) in self.host for h in block_hashes)

    def lookup(self, block_hashes: list[BlockHash]) -> int:
        self.stats.lookups += len(block_hashes)
        count = self._held_run(block_hashes)
        self.stats.hits += count
        return count

    def load(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> int:
        count = self._held_run(block_hashes)
        if not count:
            return 0
        return self._write_rows(block_ids, self.host.get([self.key(h) for h in block_hashes[:count]]), kv_cache)

    def save(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> None:
        keys = [self.key(h) for h in block_hashes]
        new = [i for i, key in enumerate(keys) if key not in self.host]
        if not new:
            return
        data = kv_cache.pack_blocks([block_ids[i] for i in new]).to("cpu")
        self.stats.evictions += self.host.put([keys[i] for i in new], data)
        self.stats.saves += len(new)
