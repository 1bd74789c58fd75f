"""The interface every external KV tier implements."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from max_kvcache.hashing import BlockHash
from max_kvcache.paged_cache import PagedKVCache
from max_kvcache.spec import KVCacheSpec


@dataclass
class ConnectorStats:
    """Block counts: `lookups` asked, `hits` held, `loads`/`saves` copied, `errors` (I/O or connection
    failures, answered as misses), `corrupt` (entries rejected by their checksum), `evictions`."""

    lookups: int = 0
    hits: int = 0
    loads: int = 0
    saves: int = 0
    errors: int = 0
    corrupt: int = 0
    evictions: int = 0


def leading_run(held: Iterable[bool]) -> int:
    """How many of `held` are true before the first false; reads no further than that."""
    count = 0
    for flag in held:
        if not flag:
            break
        count += 1
    return count


def connector_namespace(spec: KVCacheSpec, model_fingerprint: str) -> bytes:
    """16 bytes that differ whenever the model, the KV format or the block layout differs."""
    layout = f"{model_fingerprint}|{spec.format}|{spec.num_layers}x{spec.page_size}x{spec.num_kv_heads}x{spec.head_dim}"
    return hashlib.blake2b(layout.encode(), digest_size=16).digest()


class KVConnector(ABC):
    """A tier beyond device memory, keyed by block hash.

    Connectors never raise on a miss or a broken store: they count the problem and report fewer
    blocks, and the manager recomputes the rest.
    """

    name: str = "null"

    def __init__(self, spec: KVCacheSpec, model_fingerprint: str = "") -> None:
        self.spec = spec
        self.model_fingerprint = model_fingerprint
        self.stats = ConnectorStats()
        self.namespace = connector_namespace(spec, model_fingerprint)

    def key(self, block_hash: BlockHash) -> bytes:
        """The tier's key of a block: the namespace (model and KV layout) followed by the block hash."""
        return self.namespace + block_hash

    def _write_rows(self, block_ids: list[int], data: torch.Tensor, kv_cache: PagedKVCache) -> int:
        """Unpack the leading rows written with the cache's float8 scales; others count as corrupt."""
        usable = kv_cache.matching_rows(data)
        if usable < data.shape[0]:
            self.stats.corrupt += 1
        if usable:
            kv_cache.unpack_blocks(block_ids[:usable], data[:usable])
            self.stats.loads += usable
        return usable

    @abstractmethod
    def lookup(self, block_hashes: list[BlockHash]) -> int:
        """How many leading blocks of `block_hashes` this tier holds."""

    @abstractmethod
    def load(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> int:
        """Copy the leading held blocks into `block_ids`; returns how many were loaded (stops at the first miss)."""

    @abstractmethod
    def save(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> None:
        """Copy full, written blocks out of the device cache into this tier."""

    def close(self) -> None:
        """Release files, buffers or connections."""


class NullConnector(KVConnector):
    """No external tier."""

    def lookup(self, block_hashes: list[BlockHash]) -> int:
        return 0

    def load(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> int:
        return 0

    def save(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> None:
        return None
