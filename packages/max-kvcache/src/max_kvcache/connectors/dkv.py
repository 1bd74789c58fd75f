"""The `dkv` connector: blocks in a store shared between processes or machines, over the Redis protocol."""

from __future__ import annotations

import time

import redis
import torch

from max_kvcache.connectors.base import KVConnector, leading_run
from max_kvcache.connectors.record import CorruptBlockError, decode_block, encode_block
from max_kvcache.hashing import BlockHash
from max_kvcache.paged_cache import PagedKVCache
from max_kvcache.spec import KVCacheSpec

_FAILURES = (redis.exceptions.RedisError, OSError)


class DKVConnector(KVConnector):
    """Each block is one value (a checksummed record) under `maxkv:<namespace>:<hash>`.

    A store that is unreachable or fails mid-run never stops generation: the operation counts an
    error and answers a miss, so the blocks are recomputed. After a failure the store is left alone
    for `retry_s` seconds, so a dead endpoint costs one timeout, not one per request.
    """

    name = "dkv"

    def __init__(
        self,
        spec: KVCacheSpec,
        model_fingerprint: str,
        url: str,
        ttl_s: int | None = None,
        timeout_s: float = 2.0,
        retry_s: float = 5.0,
    ) -> None:
        super().__init__(spec, model_fingerprint)
        self.url = url
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self._down_until = 0.0
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._prefix = b"maxkv:" + self.namespace.hex().encode() + b":"

    def store_key(self, block_hash: BlockHash) -> bytes:
        return self._prefix + block_hash.hex().encode()

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self) -> None:
        self.stats.errors += 1
        self._down_until = time.monotonic() + self.retry_s

    def lookup(self, block_hashes: list[BlockHash]) -> int:
        self.stats.lookups += len(block_hashes)
        if not block_hashes or not self._available():
            return 0
        pipe = self.client.pipeline(transaction=False)
        for block_hash in block_hashes:
            pipe.exists(self.store_key(block_hash))
        try:
            present = pipe.execute()
        except _FAILURES:
            self._failed()
            return 0
        count = leading_run(present)
        self.stats.hits += count
        return count

    def load(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> int:
        if not block_hashes or not self._available():
            return 0
        try:
            records = self.client.mget([self.store_key(h) for h in block_hashes])
        except _FAILURES:
            self._failed()
            return 0
        rows = []
        for block_hash, record in zip(block_hashes, records):
            if record is None:
                break
            try:
                payload = decode_block(record, self.namespace, block_hash, self.spec.packed_block_bytes)
            except CorruptBlockError:
                self.stats.corrupt += 1
                break
            rows.append(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
        return self._write_rows(block_ids, torch.stack(rows), kv_cache) if rows else 0

    def save(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> None:
        if not block_hashes or not self._available():
            return
        data = kv_cache.pack_blocks(block_ids).to("cpu")
        pipe = self.client.pipeline(transaction=False)
        for row, block_hash in enumerate(block_hashes):
            record = encode_block(self.namespace, block_hash, data[row].numpy().tobytes())
            pipe.set(self.store_key(block_hash), record, nx=True, ex=self.ttl_s)
        try:
            pipe.execute()
        except _FAILURES:
            self._failed()
            return
        self.stats.saves += len(block_hashes)

    def close(self) -> None:
        self.client.close()
