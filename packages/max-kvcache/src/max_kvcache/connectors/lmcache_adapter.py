"""The `lmcache` connector over LMCache's v1 engine, an optional extra loaded on use.

Runs against LMCache 0.4.1 to 0.5.x (round trip checked with 0.4.1, 0.4.7, 0.5.0 and 0.5.6; 0.3.x
lacks `lmcache.v1.metadata`). Each of our blocks is stored as its own one-chunk LMCache sequence
(chunk size = page size) whose "tokens" are derived from the block's chained hash, so LMCache's
prefix keys line up with ours and any leading run of blocks can be looked up without the tokens
before it. KV moves through `PagedCacheGPUConnector` in LMCache's `KV_2LTD` layout. Failures inside
LMCache are counted in `stats.errors` and answered as misses.

LMCache keys chunks with Python's `hash` unless vLLM is installed: set PYTHONHASHSEED when its
stores must outlive the process. LMCache's usage reports stay off unless LMCACHE_TRACK_USAGE says otherwise.
"""

from __future__ import annotations

import importlib
import os

import torch

from max_kvcache.connectors.base import KVConnector
from max_kvcache.connectors.layout import gather_2ltd, scatter_2ltd
from max_kvcache.hashing import BlockHash
from max_kvcache.paged_cache import PagedKVCache
from max_kvcache.spec import KVCacheSpec


def _lmcache(module: str, name: str):
    os.environ.setdefault("LMCACHE_TRACK_USAGE", "false")  # no usage reports unless the user asks for them
    return getattr(importlib.import_module(f"lmcache.v1.{module}"), name)


def _single_rank_broadcast(value, src: int):
    """One worker, so a broadcast hands the value back unchanged."""
    return value


class PagedCacheGPUConnector:
    """Copies between our `PagedKVCache` (kwarg `kvcaches`) and LMCache memory objects (`KV_2LTD`).

    Registered as a virtual subclass of LMCache's `GPUConnectorInterface` when the connector starts.
    """

    def __init__(self, spec: KVCacheSpec, kv_2ltd_format) -> None:
        self.spec = spec
        self.kv_2ltd_format = kv_2ltd_format

    def get_shape(self, num_tokens: int) -> torch.Size:
        return torch.Size([2, self.spec.num_layers, num_tokens, self.spec.num_kv_heads * self.spec.head_dim])

    def from_gpu(self, memory_obj, start: int, end: int, **kwargs) -> None:
        slots = kwargs["slot_mapping"][start:end]
        memory_obj.tensor.copy_(gather_2ltd(kwargs["kvcaches"], slots))
        memory_obj.metadata.fmt = self.kv_2ltd_format

    def to_gpu(self, memory_obj, start: int, end: int, **kwargs) -> None:
        scatter_2ltd(kwargs["kvcaches"], kwargs["slot_mapping"][start:end], memory_obj.tensor)

    def batched_from_gpu(self, memory_objs, starts, ends, **kwargs) -> None:
        for memory_obj, start, end in zip(memory_objs, starts, ends):
            self.from_gpu(memory_obj, start, end, **kwargs)

    def batched_to_gpu(self, memory_objs=None, starts=None, ends=None, **kwargs) -> None:
        for memory_obj, start, end in zip(memory_objs or [], starts or [], ends or []):
            self.to_gpu(memory_obj, start, end, **kwargs)


class LMCacheConnector(KVConnector):
    """Config: `config_file` (an LMCache YAML file) or LMCache settings as keys (e.g. `max_local_cpu_size`)."""

    name = "lmcache"

    def __init__(self, spec: KVCacheSpec, model_fingerprint: str, config: dict) -> None:
        super().__init__(spec, model_fingerprint)
        engine_config_cls = _lmcache("config", "LMCacheEngineConfig")
        settings = dict(config)
        if "config_file" in settings:
            engine_config = engine_config_cls.from_file(settings.pop("config_file"))
        else:
            engine_config = engine_config_cls.from_defaults(**settings)
        engine_config.chunk_size = spec.page_size
        kv_shape = (spec.num_layers, 2, spec.page_size, spec.num_kv_heads, spec.head_dim)
        metadata = _lmcache("metadata", "LMCacheMetadata")(
            model_name=self.namespace.hex(), world_size=1, local_world_size=1, worker_id=0, local_worker_id=0,
            kv_dtype=spec.dtype, kv_shape=kv_shape, chunk_size=spec.page_size,
        )
        _lmcache("gpu_connector.gpu_connectors", "GPUConnectorInterface").register(PagedCacheGPUConnector)
        gpu_connector = PagedCacheGPUConnector(spec, _lmcache("memory_management", "MemoryFormat").KV_2LTD)
        self.instance_id = f"max-kvcache-{self.namespace.hex()}"
        self._builder = _lmcache("cache_engine", "LMCacheEngineBuilder")
        self.engine = self._builder.get_or_create(
            self.instance_id, engine_config, metadata, gpu_connector, _single_rank_broadcast, _single_rank_broadcast
        )
        self.engine.post_init()

    def _tokens(self, block_hash: BlockHash) -> torch.Tensor:
        """`page_size` pseudo-tokens standing for one block: 31-bit words of its hash, repeated."""
        words = [int.from_bytes(block_hash[i : i + 4], "little") & 0x7FFFFFFF for i in range(0, len(block_hash), 4)]
        return torch.tensor([words[i % len(words)] for i in range(self.spec.page_size)], dtype=torch.long)

    def _slots(self, block_id: int) -> torch.Tensor:
        return torch.arange(self.spec.page_size, dtype=torch.long) + block_id * self.spec.page_size

    def lookup(self, block_hashes: list[BlockHash]) -> int:
        self.stats.lookups += len(block_hashes)
        count = 0
        try:
            for block_hash in block_hashes:
                if self.engine.lookup(self._tokens(block_hash)) < self.spec.page_size:
                    break
                count += 1
        except Exception:  # LMCache's own failures must not stop generation
            self.stats.errors += 1
        self.stats.hits += count
        return count

    def load(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> int:
        count = 0
        try:
            for block_hash, block_id in zip(block_hashes, block_ids):
                tokens, slots = self._tokens(block_hash), self._slots(block_id)
                if int(self.engine.retrieve(tokens, kvcaches=kv_cache, slot_mapping=slots).sum()) < self.spec.page_size:
                    break
                count += 1
        except Exception:
            self.stats.errors += 1
        self.stats.loads += count
        return count

    def save(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> None:
        try:
            for block_hash, block_id in zip(block_hashes, block_ids):
                self.engine.store(self._tokens(block_hash), kvcaches=kv_cache, slot_mapping=self._slots(block_id))
                self.stats.saves += 1
        except Exception:
            self.stats.errors += 1

    def close(self) -> None:
        self._builder.destroy(self.instance_id)
