"""A fast reader of a GGUF file's header: metadata and the tensor table, never the tensor data.

`gguf.GGUFReader` builds a view per element of every array, which takes seconds for a 49k-token
vocabulary; this walks the header once and keeps long arrays only as their length. The value and
tensor types are the `gguf` package's own enums.
"""

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGUF_MAGIC, GGMLQuantizationType, GGUFValueType

_SCALARS = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
MAX_KEPT_ARRAY = 64


@dataclass(frozen=True)
class ArrayLength:
    """A metadata array longer than MAX_KEPT_ARRAY, kept only as its length."""

    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF order: the fastest-varying dimension first
    type_name: str


class _Cursor:
    def __init__(self, data: Any):
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        raw = self.data[self.pos : self.pos + length]
        if len(raw) != length:
            raise ValueError("truncated string")
        self.pos += length
        return bytes(raw).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.unpack("<Q")  # read first: `self.pos += self.unpack(...)` would use the old position
        self.pos += length

    def value(self, kind: GGUFValueType) -> Any:
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            item_kind, count = GGUFValueType(self.unpack("<I")), self.unpack("<Q")
            if count > len(self.data) - self.pos:
                raise ValueError(f"array of {count} items runs past the end of the file")
            if count <= MAX_KEPT_ARRAY:
                return [self.value(item_kind) for _ in range(count)]
            if item_kind == GGUFValueType.STRING:
                for _ in range(count):
                    self.skip_string()
            elif item_kind in _SCALARS:
                self.pos += count * struct.calcsize(_SCALARS[item_kind])
            else:
                for _ in range(count):
                    self.value(item_kind)
            return ArrayLength(count)
        return self.unpack(_SCALARS[kind])


def read_gguf_header(path: Path) -> tuple[dict[str, Any], list[TensorInfo]]:
    """(metadata, tensor table) of a little-endian GGUF file; ValueError on a malformed one."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        cursor = _Cursor(data)
        if cursor.unpack("<I") != GGUF_MAGIC:
            raise ValueError("no GGUF magic")
        version = cursor.unpack("<I")
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version} (big-endian files are not supported)")
        tensor_count, kv_count = cursor.unpack("<Q"), cursor.unpack("<Q")
        metadata = {}
        for _ in range(kv_count):
            key = cursor.string()
            metadata[key] = cursor.value(GGUFValueType(cursor.unpack("<I")))
        tensors = []
        for _ in range(tensor_count):
            name = cursor.string()
            dims = cursor.unpack("<I")
            shape = tuple(cursor.unpack("<Q") for _ in range(dims))
            kind = GGMLQuantizationType(cursor.unpack("<I"))
            cursor.unpack("<Q")  # data offset
            tensors.append(TensorInfo(name, shape, kind.name))
        return metadata, tensors
