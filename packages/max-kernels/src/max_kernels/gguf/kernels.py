"""Triton kernels that read GGUF blocks in place: dequantize, and the weight decoding shared with
`quantized_linear`.

`block_values` decodes values of whole blocks, `q4_halves` both nibbles of Q4_0 / Q4_1 code bytes
at once; `weight_values` decodes any (row, column) positions, so tiles need not align with blocks.
`QTYPE` is the GGML type id (see `formats.GGMLType`); `BS` and `TS` its values and bytes per block.
"""

import torch

from max_kernels.dispatch import import_triton, triton_available
from max_kernels.gguf.formats import BLOCK_GEOMETRY, FLOAT_TYPES, IQ4_LEVELS, GGMLType

triton, tl = import_triton()


@triton.jit
def load_byte(ptr, offset, mask):
    return tl.load(ptr + offset, mask=mask, other=0).to(tl.int32)


@triton.jit
def _f16(ptr, offset, mask):
    bits = load_byte(ptr, offset, mask) | (load_byte(ptr, offset + 1, mask) << 8)
    return bits.to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def q4_k_sub_block_scales(ptr, base, j, mask):
    """Scale and offset (d * sc_j, dmin * m_j) of sub-block `j` of the Q4_K blocks at `base`."""
    lo = load_byte(ptr, base + 4 + j % 4, mask)
    mid = load_byte(ptr, base + 8 + j % 4, mask)
    hi = load_byte(ptr, base + 8 + j, mask)
    sc = tl.where(j < 4, lo & 63, (hi & 15) | ((lo >> 6) << 4))
    mn = tl.where(j < 4, mid & 63, (hi >> 4) | ((mid >> 6) << 4))
    return _f16(ptr, base, mask) * sc.to(tl.float32), _f16(ptr, base + 2, mask) * mn.to(tl.float32)


# IQ4_LEVELS as four words of four bytes (two's complement), so kernels look levels up without a table.
_IQ4_WORDS = [sum((v & 0xFF) << (8 * k) for k, v in enumerate(IQ4_LEVELS[i : i + 4])) for i in range(0, 16, 4)]
IQ4_W0, IQ4_W1, IQ4_W2, IQ4_W3 = (tl.constexpr(w) if triton_available() else w for w in _IQ4_WORDS)


@triton.jit
def iq4_level(q):
    """The IQ4 level of 4-bit codes `q` (int32), as int32."""
    word = tl.where(q < 8, tl.where(q < 4, IQ4_W0, IQ4_W1), tl.where(q < 12, IQ4_W2, IQ4_W3)).to(tl.int64)
    byte = ((word >> ((q % 4) * 8).to(tl.int64)) & 255).to(tl.int32)
    return byte - 256 * (byte >= 128).to(tl.int32)


@triton.jit
def block_values(ptr, base, e, mask, QTYPE: tl.constexpr):
    """Float32 weights at index `e` of the blocks starting at byte `base` (`mask`ed per block).

    Shapes broadcast: with `base` [..., 1] and `e` [1, ..., BLOCK VALUES], the block scales are read
    once per block, the codes once per value.
    """
    if QTYPE == 2:  # Q4_0
        q = (load_byte(ptr, base + 2 + e % 16, mask) >> ((e // 16) * 4)) & 15
        w = _f16(ptr, base, mask) * (q - 8).to(tl.float32)
    elif QTYPE == 3:  # Q4_1
        q = (load_byte(ptr, base + 4 + e % 16, mask) >> ((e // 16) * 4)) & 15
        w = _f16(ptr, base, mask) * q.to(tl.float32) + _f16(ptr, base + 2, mask)
    elif QTYPE == 8:  # Q8_0
        q = tl.load(ptr + base + 2 + e, mask=mask, other=0).to(tl.int8, bitcast=True)
        w = q.to(tl.float32) * _f16(ptr, base, mask)
    elif QTYPE == 12:  # Q4_K
        j = e // 32
        d, dm = q4_k_sub_block_scales(ptr, base, j, mask)
        q = (load_byte(ptr, base + 16 + (j // 2) * 32 + e % 32, mask) >> ((j % 2) * 4)) & 15
        w = d * q.to(tl.float32) - dm
    elif QTYPE == 6 or QTYPE == 7:  # Q5_0, Q5_1: fifth bits, then nibbles as Q4_0
        off = 2 * (QTYPE == 7)
        high = (load_byte(ptr, base + 2 + off + e // 8, mask) >> (e % 8)) & 1
        q = ((load_byte(ptr, base + 6 + off + e % 16, mask) >> ((e // 16) * 4)) & 15) | (high << 4)
        if QTYPE == 6:
            w = _f16(ptr, base, mask) * (q - 16).to(tl.float32)
        else:
            w = _f16(ptr, base, mask) * q.to(tl.float32) + _f16(ptr, base + 2, mask)
    elif QTYPE == 13:  # Q5_K: Q4_K's scales and nibbles, fifth bit j of byte e % 32 for sub-block j
        j = e // 32
        d, dm = q4_k_sub_block_scales(ptr, base, j, mask)
        low = (load_byte(ptr, base + 48 + (j // 2) * 32 + e % 32, mask) >> ((j % 2) * 4)) & 15
        high = (load_byte(ptr, base + 16 + e % 32, mask) >> j) & 1
        w = d * (low | (high << 4)).to(tl.float32) - dm
    elif QTYPE == 10 or QTYPE == 11:  # Q2_K, Q3_K: 2-bit lows in 32-byte runs, four shifts apart
        i = e // 16
        runs = base + 16 + 16 * (QTYPE == 11) + (e // 128) * 32 + e % 32
        low = (load_byte(ptr, runs, mask) >> (((e % 128) // 32) * 2)) & 3
        if QTYPE == 10:
            sc = load_byte(ptr, base + i, mask)
            dl = _f16(ptr, base + 80, mask) * (sc & 15).to(tl.float32)
            ml = _f16(ptr, base + 82, mask) * (sc >> 4).to(tl.float32)
            w = dl * low.to(tl.float32) - ml
        else:
            high = (load_byte(ptr, base + e % 32, mask) >> (e // 32)) & 1
            lo_sc = (load_byte(ptr, base + 96 + i % 8, mask) >> ((i // 8) * 4)) & 15
            hi_sc = (load_byte(ptr, base + 104 + i % 4, mask) >> ((i // 4) * 2)) & 3
            dl = _f16(ptr, base + 108, mask) * ((lo_sc | (hi_sc << 4)) - 32).to(tl.float32)
            w = dl * (low - 4 * (1 - high)).to(tl.float32)
    elif QTYPE == 20:  # IQ4_NL: nibbles as Q4_0, looked up
        q = (load_byte(ptr, base + 2 + e % 16, mask) >> ((e // 16) * 4)) & 15
        w = _f16(ptr, base, mask) * iq4_level(q).to(tl.float32)
    elif QTYPE == 23:  # IQ4_XS: 16 bytes of nibbles per 32-value sub-block j, 6-bit scales
        j = e // 32
        q = (load_byte(ptr, base + 8 + j * 16 + e % 16, mask) >> (((e % 32) // 16) * 4)) & 15
        low = (load_byte(ptr, base + 4 + j // 2, mask) >> ((j % 2) * 4)) & 15
        high = (load_byte(ptr, base + 2 + j // 4, mask) >> ((j % 4) * 2)) & 3
        dl = _f16(ptr, base, mask) * ((low | (high << 4)) - 32).to(tl.float32)
        w = dl * iq4_level(q).to(tl.float32)
    else:
        tl.static_assert(QTYPE == 14)  # Q6_K
        r = e % 128
        low = (load_byte(ptr, base + (e // 128) * 64 + r % 64, mask) >> ((r // 64) * 4)) & 15
        high = (load_byte(ptr, base + 128 + (e // 128) * 32 + r % 32, mask) >> ((r // 32) * 2)) & 3
        sc = tl.load(ptr + base + 192 + e // 16, mask=mask, other=0).to(tl.int8, bitcast=True)
        d = _f16(ptr, base + 208, mask) * sc.to(tl.float32)
        w = d * ((low | (high << 4)) - 32).to(tl.float32)
    return w


@triton.jit
def q4_halves(ptr, base, mask, QTYPE: tl.constexpr):
    """Q4_0 / Q4_1 blocks at byte `base` [..., 1] as their values i and 16 + i ([..., 16] each),
    decoded from one read of each code byte."""
    codes = load_byte(ptr, base + 2 * (QTYPE == 3) + 2 + tl.arange(0, 16), mask)
    d = _f16(ptr, base, mask)
    if QTYPE == 2:  # Q4_0
        lo = d * ((codes & 15) - 8).to(tl.float32)
        hi = d * ((codes >> 4) - 8).to(tl.float32)
    else:
        tl.static_assert(QTYPE == 3)  # Q4_1
        m = _f16(ptr, base + 2, mask)
        lo = d * (codes & 15).to(tl.float32) + m
        hi = d * (codes >> 4).to(tl.float32) + m
    return lo, hi


@triton.jit
def weight_values(ptr, row, col, row_bytes, mask, QTYPE: tl.constexpr, BS: tl.constexpr, TS: tl.constexpr):
    """Float32 weights at (`row`, `col`) of a GGUF tensor with `row_bytes` rows of `BS`-value,
    `TS`-byte blocks."""
    base = row.to(tl.int64) * row_bytes + (col // BS) * TS
    return block_values(ptr, base, col % BS, mask, QTYPE)


@triton.jit
def _dequantize_kernel(
    raw_ptr, out_ptr, n_blocks, QTYPE: tl.constexpr, BS: tl.constexpr, TS: tl.constexpr, BLOCKS: tl.constexpr
):
    """`BLOCKS` blocks per program; rows hold whole blocks, so the tensor is one run of blocks."""
    block = tl.program_id(0).to(tl.int64) * BLOCKS + tl.arange(0, BLOCKS)
    mask = (block < n_blocks)[:, None]
    base = block[:, None] * TS
    out = out_ptr + block[:, None] * BS
    if QTYPE == 2 or QTYPE == 3:  # Q4_0, Q4_1: each code byte read once, for values i and 16 + i
        lo, hi = q4_halves(raw_ptr, base, mask, QTYPE)
        tl.store(out + tl.arange(0, 16)[None, :], lo, mask=mask)
        tl.store(out + 16 + tl.arange(0, 16)[None, :], hi, mask=mask)
    else:
        w = block_values(raw_ptr, base, tl.arange(0, BS)[None, :], mask, QTYPE)
        tl.store(out + tl.arange(0, BS)[None, :], w, mask=mask)


def dequantize_triton(raw: torch.Tensor, qtype: GGMLType, shape: tuple[int, ...]) -> torch.Tensor:
    """Triton dequantize of a block-quantized tensor; fused multiply-add is disabled so results match
    gguf-py to the bit."""
    if qtype in FLOAT_TYPES:
        raise ValueError(f"the Triton dequantize kernel reads block types, not {qtype.name}")
    out = torch.empty(shape, dtype=torch.float32, device=raw.device)
    values, size = BLOCK_GEOMETRY[qtype]
    n_blocks = out.numel() // values
    if n_blocks:
        blocks = max(1, 1024 // values)
        _dequantize_kernel[(triton.cdiv(n_blocks, blocks),)](
            raw.reshape(-1),
            out,
            n_blocks,
            QTYPE=int(qtype),
            BS=values,
            TS=size,
            BLOCKS=blocks,
            enable_fp_fusion=False,
        )
    return out
