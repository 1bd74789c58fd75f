"""GGML tensor types: block geometry and byte layout of the formats we read.

Type ids are GGML's own (`gguf.GGMLQuantizationType` values), so a type read by `gguf.GGUFReader`
converts with `GGMLType(int(t.tensor_type))`. Shapes here are in torch order: the last dimension is
the contiguous one (GGML's `ne[0]`) and must be a whole number of blocks.

Block layouts (bytes, little endian; `d`, `m`, `dmin` are float16):
- Q4_0 (32 values, 18 B): `d`, 16 bytes of nibbles; value i < 16 is the low nibble of byte i, value
  16 + i its high nibble; w = d * (q - 8).
- Q4_1 (32 values, 20 B): `d`, `m`, 16 bytes of nibbles as Q4_0; w = d * q + m.
- Q8_0 (32 values, 34 B): `d`, 32 int8; w = d * q.
- Q4_K (256 values, 144 B): `d`, `dmin`, 12 bytes of eight 6-bit scales and mins, 128 bytes of
  nibbles; sub-block j (32 values) uses the low (even j) or high (odd j) nibbles of bytes
  32 * (j // 2) ...; w = (d * sc_j) * q - (dmin * m_j).
- Q6_K (256 values, 210 B): 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 int8 scales, `d`;
  w = (d * sc_(i // 16)) * (q - 32).
- Q5_0 (32 values, 22 B): `d`, 4 bytes of fifth bits (bit i of the little-endian uint32 for value i),
  16 bytes of nibbles as Q4_0; w = d * (q - 16).
- Q5_1 (32 values, 24 B): `d`, `m`, fifth bits and nibbles as Q5_0; w = d * q + m.
- Q5_K (256 values, 176 B): `d`, `dmin`, 12 bytes of scales and mins as Q4_K, 32 bytes of fifth bits
  (bit j of byte i for value i of sub-block j), 128 bytes of nibbles as Q4_K;
  w = (d * sc_j) * q - (dmin * m_j).
- Q3_K (256 values, 110 B): 32 bytes of high-bit masks, 64 bytes of 2-bit lows, 12 bytes of sixteen
  6-bit scales (offset by 32), `d`; q = low - 4 * (1 - high bit), w = (d * (sc_(i // 16) - 32)) * q.
- Q2_K (256 values, 84 B): 16 bytes of 4-bit scale / min pairs, 64 bytes of 2-bit values, `d`,
  `dmin`; w = (d * sc_(i // 16)) * q - (dmin * m_(i // 16)).
- IQ4_NL (32 values, 18 B): `d`, nibbles as Q4_0; w = d * K[q], with K the 16 non-linear levels
  `IQ4_LEVELS`.
- IQ4_XS (256 values, 136 B): `d`, a uint16 of eight 2-bit scale highs, 4 bytes of eight 4-bit scale
  lows, then for each 32-value sub-block j 16 bytes of nibbles as Q4_0; w = (d * (sc_j - 32)) * K[q].
The K-quants lay their 2-bit fields out in runs of 32 bytes, four shifts (0, 2, 4, 6) apart.
"""

import math
from enum import IntEnum

import torch


class GGMLType(IntEnum):
    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    IQ4_NL = 20
    IQ4_XS = 23
    BF16 = 30


# (values per block, bytes per block)
BLOCK_GEOMETRY: dict[GGMLType, tuple[int, int]] = {
    GGMLType.F32: (1, 4),
    GGMLType.F16: (1, 2),
    GGMLType.BF16: (1, 2),
    GGMLType.Q4_0: (32, 18),
    GGMLType.Q4_1: (32, 20),
    GGMLType.Q5_0: (32, 22),
    GGMLType.Q5_1: (32, 24),
    GGMLType.Q8_0: (32, 34),
    GGMLType.Q2_K: (256, 84),
    GGMLType.Q3_K: (256, 110),
    GGMLType.Q4_K: (256, 144),
    GGMLType.Q5_K: (256, 176),
    GGMLType.Q6_K: (256, 210),
    GGMLType.IQ4_NL: (32, 18),
    GGMLType.IQ4_XS: (256, 136),
}

# The 16 levels of the IQ4 types' 4-bit codes.
IQ4_LEVELS = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)

FLOAT_TYPES = {GGMLType.F32: torch.float32, GGMLType.F16: torch.float16, GGMLType.BF16: torch.bfloat16}


def as_ggml_type(qtype: "GGMLType | int | str") -> GGMLType:
    """Accept a `GGMLType`, a `gguf.GGMLQuantizationType` (or its int) or a name such as "q4_k"."""
    try:
        if isinstance(qtype, str):
            return GGMLType[qtype.upper()]
        return GGMLType(int(qtype))
    except (KeyError, ValueError):
        names = ", ".join(t.name for t in GGMLType)
        raise ValueError(f"unsupported GGML tensor type {qtype!r}; supported: {names}") from None


def row_bytes(qtype: GGMLType, row_len: int) -> int:
    """Bytes of one row of `row_len` values; the row must hold whole blocks."""
    block_values, block_bytes = BLOCK_GEOMETRY[qtype]
    if row_len % block_values:
        raise ValueError(f"{qtype.name} rows need a multiple of {block_values} values, got {row_len}")
    return row_len // block_values * block_bytes


def packed_bytes(qtype: GGMLType, shape: tuple[int, ...]) -> int:
    """Total bytes of a tensor of logical `shape` (torch order) stored as `qtype`."""
    if not shape:
        raise ValueError(f"{qtype.name} tensors need at least one dimension")
    return math.prod(shape[:-1]) * row_bytes(qtype, shape[-1])
