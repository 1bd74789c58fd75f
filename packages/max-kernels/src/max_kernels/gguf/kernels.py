"""Triton kernels that read GGUF blocks in place: element-wise dequantize and the weight tiles of
`quantized_linear`.

`weight_values` returns float32 weights at any (row, column) positions, so tiles need not align with
the 32- or 256-value blocks; `QTYPE` is the GGML type id (see `formats.GGMLType`).
"""

import torch

from max_kernels.dispatch import import_triton
from max_kernels.gguf.formats import GGMLType, row_bytes

triton, tl = import_triton()


@triton.jit
def _byte(ptr, offset, mask):
    return tl.load(ptr + offset, mask=mask, other=0).to(tl.int32)


@triton.jit
def _f16(ptr, offset, mask):
    bits = _byte(ptr, offset, mask) | (_byte(ptr, offset + 1, mask) << 8)
    return bits.to(tl.uint16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def weight_values(ptr, row, col, row_bytes, mask, QTYPE: tl.constexpr):
    """Float32 weights at (`row`, `col`) of a GGUF tensor whose rows are `row_bytes` long."""
    row_start = row.to(tl.int64) * row_bytes
    if QTYPE == 2:  # Q4_0
        base = row_start + (col // 32) * 18
        i = col % 32
        q = (_byte(ptr, base + 2 + i % 16, mask) >> ((i // 16) * 4)) & 15
        w = _f16(ptr, base, mask) * (q - 8).to(tl.float32)
    elif QTYPE == 3:  # Q4_1
        base = row_start + (col // 32) * 20
        i = col % 32
        q = (_byte(ptr, base + 4 + i % 16, mask) >> ((i // 16) * 4)) & 15
        w = _f16(ptr, base, mask) * q.to(tl.float32) + _f16(ptr, base + 2, mask)
    elif QTYPE == 8:  # Q8_0
        base = row_start + (col // 32) * 34
        q = tl.load(ptr + base + 2 + col % 32, mask=mask, other=0).to(tl.int8, bitcast=True)
        w = q.to(tl.float32) * _f16(ptr, base, mask)
    elif QTYPE == 12:  # Q4_K
        base = row_start + (col // 256) * 144
        e = col % 256
        j = e // 32
        lo = _byte(ptr, base + 4 + j % 4, mask)
        mid = _byte(ptr, base + 8 + j % 4, mask)
        hi = _byte(ptr, base + 8 + j, mask)
        sc = tl.where(j < 4, lo & 63, (hi & 15) | ((lo >> 6) << 4))
        mn = tl.where(j < 4, mid & 63, (hi >> 4) | ((mid >> 6) << 4))
        q = (_byte(ptr, base + 16 + (j // 2) * 32 + e % 32, mask) >> ((j % 2) * 4)) & 15
        d = _f16(ptr, base, mask) * sc.to(tl.float32)
        dm = _f16(ptr, base + 2, mask) * mn.to(tl.float32)
        w = d * q.to(tl.float32) - dm
    else:
        tl.static_assert(QTYPE == 14)  # Q6_K
        base = row_start + (col // 256) * 210
        e = col % 256
        r = e % 128
        low = (_byte(ptr, base + (e // 128) * 64 + r % 64, mask) >> ((r // 64) * 4)) & 15
        high = (_byte(ptr, base + 128 + (e // 128) * 32 + r % 32, mask) >> ((r // 32) * 2)) & 3
        sc = tl.load(ptr + base + 192 + e // 16, mask=mask, other=0).to(tl.int8, bitcast=True)
        d = _f16(ptr, base + 208, mask) * sc.to(tl.float32)
        w = d * ((low | (high << 4)) - 32).to(tl.float32)
    return w


@triton.jit
def _dequantize_kernel(raw_ptr, out_ptr, numel, cols, row_bytes, QTYPE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = weight_values(raw_ptr, offs // cols, offs % cols, row_bytes, mask, QTYPE)
    tl.store(out_ptr + offs, w, mask=mask)


def dequantize_triton(raw: torch.Tensor, qtype: GGMLType, shape: tuple[int, ...]) -> torch.Tensor:
    """Triton dequantize; fused multiply-add is disabled so results match gguf-py to the bit."""
    out = torch.empty(shape, dtype=torch.float32, device=raw.device)
    numel = out.numel()
    if numel:
        block = 1024
        _dequantize_kernel[(triton.cdiv(numel, block),)](
            raw.reshape(-1),
            out,
            numel,
            shape[-1],
            row_bytes(qtype, shape[-1]),
            QTYPE=int(qtype),
            BLOCK=block,
            enable_fp_fusion=False,
        )
    return out
