"""Dequantize GGUF tensors to float32, bit-identical to `gguf.quants.dequantize`.

The PyTorch twin mirrors gguf-py's operation order (no fused multiply-add), so it matches to the bit;
the Triton kernel is launched with floating-point contraction turned off for the same reason.
"""

import torch

from max_kernels.dispatch import use_triton
from max_kernels.gguf.formats import FLOAT_TYPES, IQ4_LEVELS, GGMLType, as_ggml_type, packed_bytes
from max_kernels.gguf.kernels import dequantize_triton


def dequantize(raw: torch.Tensor, qtype: "GGMLType | int | str", shape: tuple[int, ...]) -> torch.Tensor:
    """Unpack `raw` (uint8, any shape, `packed_bytes(qtype, shape)` bytes) into float32 of `shape`."""
    qtype = as_ggml_type(qtype)
    shape = tuple(int(s) for s in shape)
    expected = packed_bytes(qtype, shape)
    if raw.dtype != torch.uint8 or raw.numel() != expected:
        raise ValueError(
            f"{qtype.name} tensor of shape {shape} needs {expected} uint8 bytes, got {raw.numel()} of {raw.dtype}"
        )
    if use_triton(raw) and qtype not in FLOAT_TYPES:
        return dequantize_triton(raw, qtype, shape)
    return dequantize_ref(raw, qtype, shape)


def f16_fields(raw: torch.Tensor) -> torch.Tensor:
    """Little-endian float16 fields ([..., 2] bytes) as float32 ([..., 1])."""
    return raw.contiguous().view(torch.float16).float()


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    """[n, c] bytes -> [n, 2c]: the c low nibbles, then the c high nibbles."""
    return torch.cat([qs & 0x0F, qs >> 4], dim=-1)


def _bits(b: torch.Tensor) -> torch.Tensor:
    """[n, c] bytes -> [n, c, 8]: bit j of byte i at [:, i, j]."""
    return torch.stack([(b >> j) & 1 for j in range(8)], dim=-1)


def _shifts(b: torch.Tensor, shifts: tuple[int, ...], mask: int) -> torch.Tensor:
    """[n, g, w] byte runs -> [n, g, len(shifts), w]: each run's field at each shift (python shift
    counts, so no tensor of them is copied to the device)."""
    return torch.stack([(b >> s) & mask for s in shifts], dim=2)


def _q4_0(b: torch.Tensor) -> torch.Tensor:
    d = f16_fields(b[:, :2])
    q = _nibbles(b[:, 2:]).to(torch.int8) - 8
    return d * q.float()


def _q4_1(b: torch.Tensor) -> torch.Tensor:
    d, m = f16_fields(b[:, :2]), f16_fields(b[:, 2:4])
    return d * _nibbles(b[:, 4:]).float() + m


def _q8_0(b: torch.Tensor) -> torch.Tensor:
    return b[:, 2:].contiguous().view(torch.int8).float() * f16_fields(b[:, :2])


def q4_k_scales(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eight 6-bit scales and mins packed in 12 bytes ([n, 12] -> two [n, 8] uint8)."""
    lo, mid, hi = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    sc = torch.cat([lo & 0x3F, (hi & 0x0F) | ((lo >> 2) & 0x30)], dim=-1)
    mn = torch.cat([mid & 0x3F, (hi >> 4) | ((mid >> 2) & 0x30)], dim=-1)
    return sc, mn


def _q4_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    d, dmin = f16_fields(b[:, 0:2]), f16_fields(b[:, 2:4])
    sc, mn = q4_k_scales(b[:, 4:16])
    d = (d * sc.float()).view(n, 8, 1)
    dm = (dmin * mn.float()).view(n, 8, 1)
    q = _shifts(b[:, 16:].reshape(n, 4, 32), (0, 4), 0x0F).reshape(n, 8, 32).float()
    return (d * q - dm).reshape(n, 256)


def q6_k_parts(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q6_K blocks `[n, 210]` -> codes `[n, 256]` int8 in -32..31, sub-block scales `[n, 16]` int8 (one per
    16 values) and super-block scales `d` `[n, 1]` float32: w = d * scale * code."""
    n = b.shape[0]
    low = _shifts(b[:, :128].reshape(n, 2, 64), (0, 4), 0x0F)
    high = _shifts(b[:, 128:192].reshape(n, 2, 32), (0, 2, 4, 6), 0x03)
    q = (low.reshape(n, 8, 32) | (high.reshape(n, 8, 32) << 4)).to(torch.int8) - 32
    return q.reshape(n, 256), b[:, 192:208].contiguous().view(torch.int8), f16_fields(b[:, 208:210])


def _q6_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    q, sc, d = q6_k_parts(b)
    return ((d * sc.float()).view(n, 16, 1) * q.reshape(n, 16, 16).float()).reshape(n, 256)


def q5_codes(b: torch.Tensor) -> torch.Tensor:
    """Q5_0 / Q5_1 blocks `[n, 22 | 24]` -> values 0..31 `[n, 32]` from their fifth bits and nibbles."""
    qh, qs = b[:, -20:-16], b[:, -16:]
    return _nibbles(qs) | (_bits(qh).reshape(-1, 32) << 4)


def _q5_0(b: torch.Tensor) -> torch.Tensor:
    d = f16_fields(b[:, :2])
    q = q5_codes(b).to(torch.int8) - 16
    return d * q.float()


def _q5_1(b: torch.Tensor) -> torch.Tensor:
    d, m = f16_fields(b[:, :2]), f16_fields(b[:, 2:4])
    return d * q5_codes(b).float() + m


def q5_k_parts(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q5_K blocks `[n, 176]` -> values 0..31 `[n, 8, 32]` (uint8) and per-sub-block scale `d * sc` and
    min `dmin * m` (`[n, 8, 1]` float32): w = scale * q - min."""
    n = b.shape[0]
    d, dmin = f16_fields(b[:, 0:2]), f16_fields(b[:, 2:4])
    sc, mn = q4_k_scales(b[:, 4:16])
    low = _shifts(b[:, 48:].reshape(n, 4, 32), (0, 4), 0x0F).reshape(n, 8, 32)
    high = _bits(b[:, 16:48]).transpose(1, 2)  # [n, 8 sub-blocks, 32 values]
    return low | (high << 4), (d * sc.float()).view(n, 8, 1), (dmin * mn.float()).view(n, 8, 1)


def _q5_k(b: torch.Tensor) -> torch.Tensor:
    q, scale, mn = q5_k_parts(b)
    return (scale * q.float() - mn).reshape(-1, 256)


def q3_k_parts(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q3_K blocks `[n, 110]` -> values -4..3 `[n, 16, 16]` (int8), sub-block scales -32..31 `[n, 16]`
    (int8) and super-block scales `d` `[n, 1]`: w = d * scale * q."""
    n = b.shape[0]
    hmask, qs, packed = b[:, :32], b[:, 32:96], b[:, 96:108]
    low_sc = torch.cat([packed[:, :8] & 0x0F, packed[:, :8] >> 4], dim=1)  # scale j < 8: byte j; else byte j - 8
    high_sc = torch.cat([(packed[:, 8:] >> s) & 0x03 for s in (0, 2, 4, 6)], dim=1)  # byte j % 4, shift 2 * (j // 4)
    scales = (low_sc | (high_sc << 4)).to(torch.int8) - 32
    low = _shifts(qs.reshape(n, 2, 32), (0, 2, 4, 6), 0x03).reshape(n, 16, 16)
    high = _bits(hmask).transpose(1, 2).reshape(n, 16, 16) ^ 1  # a clear bit subtracts 4
    return low.to(torch.int8) - (high << 2).to(torch.int8), scales, f16_fields(b[:, 108:110])


def _q3_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    q, scales, d = q3_k_parts(b)
    return ((d * scales.float()).view(n, 16, 1) * q.float()).reshape(n, 256)


def iq4_codes(qs: torch.Tensor) -> torch.Tensor:
    """IQ4 nibbles `[n, 16]` (one 32-value run, laid out as Q4_0) -> their levels `[n, 32]` (int8)."""
    levels = torch.tensor(IQ4_LEVELS, dtype=torch.int8).to(qs.device, non_blocking=True)
    return levels[_nibbles(qs).long()]


def _iq4_nl(b: torch.Tensor) -> torch.Tensor:
    return f16_fields(b[:, :2]) * iq4_codes(b[:, 2:]).float()


def iq4_xs_parts(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IQ4_XS blocks `[n, 136]` -> levels `[n, 8, 32]` (int8) and per-sub-block scales `d * (sc - 32)`
    (`[n, 8, 1]` float32): w = scale * level."""
    n = b.shape[0]
    d = f16_fields(b[:, :2])
    high = _bits(b[:, 2:4]).reshape(n, 8, 2)  # bits 2j, 2j + 1 of the little-endian uint16
    low = torch.stack([b[:, 4:8] & 0x0F, b[:, 4:8] >> 4], dim=-1).reshape(n, 8)
    sc = (low | (high[..., 0] << 4) | (high[..., 1] << 5)).to(torch.int8) - 32
    codes = iq4_codes(b[:, 8:].reshape(n * 8, 16)).reshape(n, 8, 32)
    return codes, (d * sc.float()).view(n, 8, 1)


def _iq4_xs(b: torch.Tensor) -> torch.Tensor:
    codes, scale = iq4_xs_parts(b)
    return (scale * codes.float()).reshape(-1, 256)


def q2_k_parts(b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Q2_K blocks `[n, 84]` -> values 0..3 `[n, 16, 16]`, sub-block scales and mins 0..15 `[n, 16]`
    (uint8), and `d`, `dmin` `[n, 1]`: w = d * sc * q - dmin * m."""
    n = b.shape[0]
    scales, qs = b[:, :16], b[:, 16:80]
    q = _shifts(qs.reshape(n, 2, 32), (0, 2, 4, 6), 0x03).reshape(n, 16, 16)
    return q, scales & 0x0F, scales >> 4, f16_fields(b[:, 80:82]), f16_fields(b[:, 82:84])


def _q2_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    q, sc, mn, d, dmin = q2_k_parts(b)
    dl = (d * sc.float()).view(n, 16, 1)
    ml = (dmin * mn.float()).view(n, 16, 1)
    return (dl * q.float() - ml).reshape(n, 256)


_BLOCK_DECODERS = {
    GGMLType.Q4_0: (18, _q4_0),
    GGMLType.Q4_1: (20, _q4_1),
    GGMLType.Q5_0: (22, _q5_0),
    GGMLType.Q5_1: (24, _q5_1),
    GGMLType.Q8_0: (34, _q8_0),
    GGMLType.Q2_K: (84, _q2_k),
    GGMLType.Q3_K: (110, _q3_k),
    GGMLType.Q4_K: (144, _q4_k),
    GGMLType.Q5_K: (176, _q5_k),
    GGMLType.Q6_K: (210, _q6_k),
    GGMLType.IQ4_NL: (18, _iq4_nl),
    GGMLType.IQ4_XS: (136, _iq4_xs),
}


def dequantize_ref(raw: torch.Tensor, qtype: GGMLType, shape: tuple[int, ...]) -> torch.Tensor:
    """PyTorch twin: decode all blocks at once, in gguf-py's operation order."""
    flat = raw.reshape(-1)
    if qtype in FLOAT_TYPES:
        return flat.view(FLOAT_TYPES[qtype]).float().reshape(shape)
    block_bytes, decode = _BLOCK_DECODERS[qtype]
    return decode(flat.view(-1, block_bytes)).reshape(shape)
