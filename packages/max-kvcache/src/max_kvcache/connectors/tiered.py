"""The `tiered` connector: host memory in front of a disk directory, written through."""

from __future__ import annotations

import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from max_kvcache.connectors.base import KVConnector, leading_run
from max_kvcache.connectors.disk import DiskBlockStore
from max_kvcache.connectors.host import HostBlockStore
from max_kvcache.connectors.record import CorruptBlockError, encode_block, read_block_into
from max_kvcache.hashing import BlockHash
from max_kvcache.paged_cache import PagedKVCache
from max_kvcache.spec import KVCacheSpec


class TieredConnector(KVConnector):
    """Every block saved to host memory is also written to disk by background workers, so a host
    eviction loses nothing and another process using the same directory and model finds the blocks.

    Disk records are checked on load (size, namespace, block hash, checksum); a bad one is counted
    in `stats.corrupt`, deleted, and reported as a miss.
    """

    name = "tiered"

    def __init__(
        self,
        spec: KVCacheSpec,
        model_fingerprint: str,
        num_host_blocks: int,
        directory: str | None,
        disk_bytes: int,
        disk_workers: int = 2,
    ) -> None:
        super().__init__(spec, model_fingerprint)
        self.host = HostBlockStore(num_host_blocks, spec.packed_block_bytes, pin_memory=spec.device.type == "cuda")
        self._owns_directory = directory is None  # a temporary directory lives as long as the connector
        self.directory = directory or tempfile.mkdtemp(prefix="max_kv_tiered_")
        self.disk = DiskBlockStore(self.directory, self.namespace, disk_bytes)
        self._writer = ThreadPoolExecutor(max_workers=disk_workers, thread_name_prefix="kv-disk")
        self._pending: list[Future] = []
        self._stats_lock = threading.Lock()
        self._stage = torch.empty((0, spec.packed_block_bytes), dtype=torch.uint8)

    def _held(self, block_hash: BlockHash) -> bool:
        return self.key(block_hash) in self.host or self.disk.exists(block_hash)

    def lookup(self, block_hashes: list[BlockHash]) -> int:
        self.stats.lookups += len(block_hashes)
        count = leading_run(self._held(h) for h in block_hashes)
        self.stats.hits += count
        return count

    def load(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> int:
        data = self._staging(len(block_hashes))
        from_disk: list[int] = []
        count = 0
        for block_hash in block_hashes:
            key = self.key(block_hash)
            if key in self.host:
                data[count] = self.host.get([key])[0]
            elif self._read_disk(block_hash, data[count]):
                from_disk.append(count)
            else:
                break
            count += 1
        loaded = self._write_rows(block_ids, data[:count], kv_cache) if count else 0
        from_disk = [i for i in from_disk if i < loaded][-self.host.capacity :]
        if from_disk:
            promoted = [self.key(block_hashes[i]) for i in from_disk]
            self.stats.evictions += self.host.put(promoted, data.index_select(0, torch.tensor(from_disk)))
        return loaded

    def _staging(self, num_blocks: int) -> torch.Tensor:
        """A reused host buffer for `num_blocks` packed blocks (fresh memory would page-fault on every load)."""
        if self._stage.shape[0] < num_blocks:
            pin = self.spec.device.type == "cuda"
            self._stage = torch.empty((num_blocks, self.spec.packed_block_bytes), dtype=torch.uint8, pin_memory=pin)
        return self._stage[:num_blocks]

    def _read_disk(self, block_hash: BlockHash, out: torch.Tensor) -> bool:
        """Read the block's file into `out`; a missing, unreadable or damaged file is a miss."""
        try:
            f = self.disk.open(block_hash)
            if f is None:
                return False
            with f:
                read_block_into(f, self.namespace, block_hash, memoryview(out.numpy()))
        except CorruptBlockError:
            self.stats.corrupt += 1
            self.disk.remove(block_hash)
            return False
        except OSError:
            self.stats.errors += 1
            return False
        return True

    def save(self, block_hashes: list[BlockHash], block_ids: list[int], kv_cache: PagedKVCache) -> None:
        new = [i for i, h in enumerate(block_hashes) if not self._held(h)]
        if not new:
            return
        data = kv_cache.pack_blocks([block_ids[i] for i in new]).to("cpu")
        self.stats.evictions += self.host.put([self.key(block_hashes[i]) for i in new], data)
        for row, i in enumerate(new):
            record = encode_block(self.namespace, block_hashes[i], data[row].numpy().tobytes())
            self._pending.append(self._writer.submit(self._write_disk, block_hashes[i], record))
        self._pending = [f for f in self._pending if not f.done()]
        self.stats.saves += len(new)

    def _write_disk(self, block_hash: BlockHash, record: bytes) -> None:
        try:
            evicted = self.disk.write(block_hash, record)
        except OSError:
            with self._stats_lock:
                self.stats.errors += 1
            return
        with self._stats_lock:
            self.stats.evictions += evicted

    def flush(self) -> None:
        """Wait for every queued disk write."""
        for future in self._pending:
            future.result()
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._writer.shutdown(wait=True)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
