"""`PackedMatrix`: a GGUF block weight in the storage the native library reads, and its ctypes face."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch

from max_kernels.gguf.dequantize import (
    f16_fields, iq4_codes, iq4_xs_parts, q2_k_parts, q3_k_parts, q5_codes, q5_k_parts, q6_k_parts,
)
from max_kernels.gguf.formats import GGMLType
from max_kernels.gguf.linear import int4_groups

SUPPORTED_TYPES = (
    GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
    GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.IQ4_NL, GGMLType.IQ4_XS,
)
_P = ctypes.c_void_p


def address(t: torch.Tensor | None) -> int:
    """A tensor's data pointer for the library (0: none)."""
    return 0 if t is None else t.data_ptr()


class _QSeg(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("rows", ctypes.c_int), ("codes", _P), ("scale", _P), ("min", _P), ("min16", _P)]


MAX_SEGMENTS = 3


class QMatStruct(ctypes.Structure):
    _fields_ = [
        ("rows", ctypes.c_int), ("cols", ctypes.c_int), ("nseg", ctypes.c_int),
        ("seg", _QSeg * MAX_SEGMENTS), ("bias", _P),
    ]


@dataclass(eq=False)
class _Segment:
    """Rows in the library's storage: `bits`-bit codes (4: nibbles as Q4_0 lays them out; 8, 16: one
    integer per value) with float32 per-32 `scale` and optional per-32 `min` or per-16 `min16`:
    w = code * scale + min.
    Q4 types take 4 bits, Q8_0, the Q5 and IQ4 types 8 (IQ4: their levels), Q2_K 8 (codes times sub-block
    scales, with per-16 mins), Q6_K and Q3_K 16 (codes times sub-block scales)."""

    bits: int
    rows: int
    codes: torch.Tensor
    scale: torch.Tensor
    min: torch.Tensor | None
    min16: torch.Tensor | None = None

    @classmethod
    def of(cls, qtype: GGMLType, data: torch.Tensor, rows: int, cols: int) -> _Segment:
        nb = cols // 32
        if qtype in (GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q4_K):  # w = (q - 8) * scale + zero
            q, scale, zero = int4_groups(data, qtype, (rows, cols))
            q = q.to(torch.uint8).reshape(rows, nb, 2, 16)
            return cls(4, rows, (q[:, :, 0] | (q[:, :, 1] << 4)).contiguous(), scale.contiguous(), (zero - 8 * scale).contiguous())
        blocks = data.reshape(rows, -1)
        if qtype == GGMLType.Q8_0:
            b = blocks.reshape(rows, nb, 34)
            scale = f16_fields(b[..., :2]).reshape(rows, nb)
            return cls(8, rows, b[..., 2:].contiguous(), scale, None)
        if qtype in (GGMLType.Q5_0, GGMLType.Q5_1):  # w = d * (q - 16), or d * q + m
            b = blocks.reshape(rows * nb, -1)
            q = q5_codes(b).to(torch.int8)
            d = f16_fields(b[:, :2]).reshape(rows, nb)
            if qtype == GGMLType.Q5_0:
                return cls(8, rows, (q - 16).view(torch.uint8).reshape(rows, cols), d, None)
            return cls(8, rows, q.view(torch.uint8).reshape(rows, cols), d, f16_fields(b[:, 2:4]).reshape(rows, nb))
        if qtype == GGMLType.IQ4_NL:  # w = d * level: the levels are the 8-bit codes
            b = blocks.reshape(rows * nb, 18)
            return cls(8, rows, iq4_codes(b[:, 2:]).view(torch.uint8).reshape(rows, cols), f16_fields(b[:, :2]).reshape(rows, nb), None)
        if qtype == GGMLType.IQ4_XS:
            codes, scale = iq4_xs_parts(blocks.reshape(-1, 136))
            return cls(8, rows, codes.view(torch.uint8).reshape(rows, cols), scale.reshape(rows, nb), None)
        if qtype == GGMLType.Q2_K:  # w = d * (sc * q) - dmin * m: codes sc * q <= 45, a min per 16 values
            q, sc, mn, d, dmin = q2_k_parts(blocks.reshape(-1, 84))
            codes = (sc.to(torch.int16)[..., None] * q.to(torch.int16)).to(torch.int8).view(torch.uint8)
            min16 = -(dmin * mn.float())
            return cls(
                8, rows, codes.reshape(rows, cols), d.expand(-1, 8).reshape(rows, nb).contiguous(), None,
                min16.reshape(rows, cols // 16).contiguous(),
            )
        if qtype == GGMLType.Q5_K:  # per 32-value sub-block: w = scale * q - min
            q, scale, mn = q5_k_parts(blocks.reshape(-1, 176))
            return cls(8, rows, q.reshape(rows, cols).contiguous(), scale.reshape(rows, nb), (-mn).reshape(rows, nb))
        # Q6_K and Q3_K: the codes times their 16-value sub-block scales fit 16 bits; the super-block scale per 32
        if qtype == GGMLType.Q3_K:
            q, sub, d = q3_k_parts(blocks.reshape(-1, 110))
        else:
            q, sub, d = q6_k_parts(blocks.reshape(-1, 210))
        codes = (q.reshape(-1, 16, 16).to(torch.int16) * sub.to(torch.int16)[..., None]).reshape(rows, cols)
        return cls(16, rows, codes.contiguous(), d.expand(-1, 8).reshape(rows, nb).contiguous(), None)

    def struct(self) -> _QSeg:
        return _QSeg(
            self.bits, self.rows, self.codes.data_ptr(), self.scale.data_ptr(), address(self.min), address(self.min16)
        )


@dataclass(eq=False)
class PackedMatrix:
    """A weight `[rows, cols]` as GGUF blocks: `parts` of (type, uint8 blocks `[rows_i, row bytes]`) stacked
    by rows, as a fused projection of a Q4_K_M file mixes types. Converted at build into the storage the
    library reads (see `_Segment`); the blocks themselves are not kept."""

    parts: list[tuple[GGMLType, torch.Tensor]]
    cols: int
    bias: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.parts) > MAX_SEGMENTS or self.cols % 32:
            raise ValueError(f"the native decode step takes up to {MAX_SEGMENTS} parts of whole 32-blocks")
        for qtype, _ in self.parts:
            if qtype not in SUPPORTED_TYPES:
                raise ValueError(f"the native decode step takes {', '.join(t.name for t in SUPPORTED_TYPES)}, got {qtype.name}")
        self.segments = [_Segment.of(q, d, d.shape[0], self.cols) for q, d in self.parts]
        self.rows = sum(seg.rows for seg in self.segments)
        self.parts = []
        self.bias = None if self.bias is None else self.bias.detach().float().contiguous()

    def struct(self) -> QMatStruct:
        segs = [seg.struct() for seg in self.segments] + [_QSeg()] * (MAX_SEGMENTS - len(self.segments))
        return QMatStruct(self.rows, self.cols, len(self.segments), (_QSeg * MAX_SEGMENTS)(*segs), address(self.bias))
