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
from typing import BinaryIO

SUFFIX = ".kvb"


class DiskBlockStore:
    """Files `<directory>/<namespace>/<hash[:2]>/<hash>.kvb`, oldest evicted past `budget_bytes`."""

    def __init__(self, directory: str | os.PathLike, namespace: bytes, budget_bytes: int) -> None:
        self.root = Path(directory) / namespace.hex()
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._sizes: OrderedDict[Path, int] = OrderedDict()
        self._total = 0
        found = []
        for path in self.root.glob(f"*/*{SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            found.append((stat.st_mtime, path, stat.st_size))
        for _, path, size in sorted(found):
            self._track(path, size)

    def path(self, block_hash: bytes) -> Path:
        return Path(self._file(block_hash))

    def _file(self, block_hash: bytes) -> str:
        name = block_hash.hex()
        return f"{self._root}/{name[:2]}/{name}{SUFFIX}"

    @property
    def total_bytes(self) -> int:
        return self._total

    def exists(self, block_hash: bytes) -> bool:
        return os.path.isfile(self._file(block_hash))

    def open(self, block_hash: bytes) -> BinaryIO | None:
        """The block's file opened for reading, or None. Reading marks it most recently used, here and
        (through its mtime) for the next process that scans the directory."""
        file = self._file(block_hash)
        try:
            f = open(file, "rb")
        except FileNotFoundError:
            return None
        try:
            os.utime(f.fileno())
        except PermissionError:  # a directory shared read-only: the order just stays as it was
            pass
        path = Path(file)
        with self._lock:
            if path in self._sizes:
                self._sizes.move_to_end(path)
            else:  # written by another process
                self._track(path, os.fstat(f.fileno()).st_size)
        return f

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
