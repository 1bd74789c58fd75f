"""Tensors from (possibly sharded) safetensors files, memory-mapped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open


class SafetensorsSource:
    """Yields `(name, tensor)` from each file in turn; tensors are read lazily from the mmap."""

    def __init__(self, files: tuple[Path, ...] | list[Path]):
        self.files = [Path(f) for f in files]
        self._names: dict[Path, list[str]] = {}
        for f in self.files:
            with safe_open(f, framework="pt") as handle:
                self._names[f] = list(handle.keys())

    def __len__(self) -> int:
        return sum(len(n) for n in self._names.values())

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for f in self.files:
            with safe_open(f, framework="pt") as handle:
                for name in self._names[f]:
                    yield name, handle.get_tensor(name)
