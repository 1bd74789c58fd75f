"""Tensors from a GGUF file: float tensors as torch tensors, quantized ones kept packed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFReader

_FLOAT_TYPES = {
    GGMLQuantizationType.F32: torch.float32,
    GGMLQuantizationType.F16: torch.float16,
    GGMLQuantizationType.BF16: torch.bfloat16,
}


@dataclass(frozen=True)
class PackedTensor:
    """A quantized GGUF tensor: raw block bytes `[rows, bytes_per_row]` and logical `(out, in)` shape."""

    qtype: GGMLQuantizationType
    data: torch.Tensor
    shape: tuple[int, ...]


class GGUFSource:
    """Yields `(name, tensor or PackedTensor)` for every tensor in one GGUF file (memory-mapped)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.reader = GGUFReader(self.path)

    def __len__(self) -> int:
        return len(self.reader.tensors)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor | PackedTensor]]:
        for t in self.reader.tensors:
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            data = torch.from_numpy(np.array(t.data, copy=True))
            dtype = _FLOAT_TYPES.get(t.tensor_type)
            if dtype is None:
                yield t.name, PackedTensor(t.tensor_type, data.reshape(shape[0], -1), shape)
            else:
                yield t.name, data.view(dtype).reshape(shape)
