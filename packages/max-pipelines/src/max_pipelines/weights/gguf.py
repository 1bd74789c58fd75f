"""Tensors from a GGUF file: float tensors as torch tensors, quantized ones kept packed.

Only the tensor table is parsed; the metadata is skipped (the config and tokenizer are read
elsewhere). gguf-py's reader parses every metadata value into numpy objects, which takes
seconds for a tokenizer's ~100k strings; skipping them here takes milliseconds.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

_FLOAT_TYPES = {
    GGMLQuantizationType.F32: torch.float32,
    GGMLQuantizationType.F16: torch.float16,
    GGMLQuantizationType.BF16: torch.bfloat16,
}
# GGUF metadata value types -> struct format of one scalar (8: string, 9: array).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class PackedTensor:
    """A quantized GGUF tensor: raw block bytes `[rows, bytes_per_row]` and logical `(out, in)` shape."""

    qtype: GGMLQuantizationType
    data: torch.Tensor
    shape: tuple[int, ...]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # logical, outermost first (GGUF stores innermost first)
    qtype: GGMLQuantizationType
    offset: int  # from the start of the file

    @property
    def nbytes(self) -> int:
        block, type_size = GGML_QUANT_SIZES[self.qtype]
        return math.prod(self.shape) // block * type_size


class _Cursor:
    def __init__(self, buf: memoryview):
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str):
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        n = self.take("Q")
        self.pos += n
        return bytes(self.buf[self.pos - n : self.pos]).decode("utf-8")

    def skip_string(self) -> None:
        n = self.take("Q")
        self.pos += n

    def value(self, vtype: int):
        """Read one metadata value; arrays are skipped (None) since no array is needed here."""
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.take("I"), self.take("Q")
            if etype == _STRING:
                for _ in range(count):
                    self.skip_string()
            elif etype == _ARRAY:
                for _ in range(count):
                    self.value(_ARRAY)
            else:
                self.pos += count * struct.calcsize(_SCALARS[etype])
            return None
        return self.take(_SCALARS[vtype])


def read_tensor_infos(path: Path) -> list[TensorInfo]:
    """The tensor table of a little-endian GGUF (version 2 or 3) file."""
    cur = _Cursor(memoryview(np.memmap(path, dtype=np.uint8, mode="r")))
    if cur.take("4s") != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    version = cur.take("I")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} is not supported (2 or 3; big-endian files are not)")
    n_tensors, n_kv = cur.take("Q"), cur.take("Q")
    alignment = 32
    for _ in range(n_kv):
        key = cur.string()
        value = cur.value(cur.take("I"))
        if key == "general.alignment":
            alignment = int(value)
    raw = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = [cur.take("Q") for _ in range(cur.take("I"))]
        raw.append((name, tuple(reversed(dims)), GGMLQuantizationType(cur.take("I")), cur.take("Q")))
    data_start = -(-cur.pos // alignment) * alignment
    return [TensorInfo(name, shape, qtype, data_start + off) for name, shape, qtype, off in raw]


class GGUFSource:
    """Yields `(name, tensor or PackedTensor)` for every tensor in one GGUF file (memory-mapped)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.tensors = read_tensor_infos(self.path)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor | PackedTensor]]:
        mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        for t in self.tensors:
            data = torch.from_numpy(np.array(mm[t.offset : t.offset + t.nbytes]))
            dtype = _FLOAT_TYPES.get(t.qtype)
            if dtype is None:
                yield t.name, PackedTensor(t.qtype, data.reshape(t.shape[0], -1), t.shape)
            else:
                yield t.name, data.view(dtype).reshape(t.shape)
