"""Block records as files in a directory, with a byte budget and LRU eviction.

Files are written to a temporary name and renamed into place, so a reader (in this process or
another one sharing the directory) sees a whole record or none. A record's checksum is verified by
the reader; this store only moves bytes.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

SUFFIX = ".kvb"


class DiskBlockStore:
    """Files `<directory>/<namespace>/<hash[:2]>/<hash>.kvb`, oldest evicted past `budget_bytes`."""

    def __init__(self, directory: str | os.PathLike, namespace: bytes, budget_bytes: int) -> None:
        self.root = Path(directory) / namespace.hex()
        self.root.mkdir(parents=True, exist_ok=True)
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._sizes: OrderedDict[Path, int] = OrderedDict()
        self._total = 0
        found = [(p.stat().st_mtime, p) for p in self.root.glob(f"*/*{SUFFIX}")]
        for _, path in sorted(found):
            self._track(path, path.stat().st_size)

    def path(self, block_hash: bytes) -> Path:
        name = block_hash.hex()
        return self.root / name[:2] / (name + SUFFIX)

    @property
    def total_bytes(self) -> int:
        return self._total

    def exists(self, block_hash: bytes) -> bool:
        return self.path(block_hash).is_file()

    def read(self, block_hash: bytes) -> bytes | None:
        path = self.path(block_hash)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        with self._lock:
            if path in self._sizes:
                self._sizes.move_to_end(path)
            else:  # written by another process
                self._track(path, len(data))
        return data

    def write(self, block_hash: bytes, record: bytes) -> int:
        """Write atomically; returns how many files were evicted to stay within the budget."""
        path = self.path(block_hash)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "wb") as f:
            f.write(record)
        os.replace(tmp, path)
        with self._lock:
            self._forget(path)
            self._track(path, len(record))
            return self._evict()

    def remove(self, block_hash: bytes) -> None:
        path = self.path(block_hash)
        path.unlink(missing_ok=True)
        with self._lock:
            self._forget(path)

    def _track(self, path: Path, size: int) -> None:
        self._sizes[path] = size
        self._total += size

    def _forget(self, path: Path) -> None:
        self._total -= self._sizes.pop(path, 0)

    def _evict(self) -> int:
        evicted = 0
        while self._total > self.budget_bytes and len(self._sizes) > 1:
            path, size = self._sizes.popitem(last=False)
            self._total -= size
            path.unlink(missing_ok=True)
            evicted += 1
        return evicted
