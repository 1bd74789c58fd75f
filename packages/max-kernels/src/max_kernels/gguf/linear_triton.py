"""Triton `quantized_linear`: weights stay packed in GGUF blocks and are unpacked tile by tile.

Decode batches (M <= 8 rows) run a GEMV kernel that walks K whole blocks at a time and reduces in
registers, split along K when there are too few output tiles to fill the GPU. It reads each block's
scales once and each 4-bit code byte once (both nibbles); Q4_K multiplies integer codes by the
activations per 32-value sub-block and applies the sub-block's scale and offset to the sums.
Larger batches run a GEMM tile kernel on `tl.dot` with the weight tile cast to the activation dtype
(float32 activations use full-precision dots); its Q4_0 / Q4_1 / Q8_0 / Q4_K tiles are decoded
block-wise the same way, the other types value by value.
"""

from functools import cache

import torch

from max_kernels.dispatch import import_triton
from max_kernels.gguf.formats import BLOCK_GEOMETRY, row_bytes
from max_kernels.gguf.kernels import block_values, load_byte, q4_halves, q4_k_sub_block_scales, weight_values

triton, tl = import_triton()

GEMV_MAX_M = 8


@triton.jit
def _load_x(x_ptr, ms, M, stride_xm, blocks, BS: tl.constexpr, k_end, at):
    """float32 activations [BLOCK_M, BLOCKS, R, C] at positions `at` [R, C] within each block."""
    cols = (blocks * BS)[:, None, None] + at[None, :, :]
    row = ms[:, None, None, None].to(tl.int64) * stride_xm
    mask = (ms < M)[:, None, None, None] & (blocks * BS < k_end)[None, :, None, None]
    return tl.load(x_ptr + row + cols[None, :, :, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _gemv_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    out_ptr,
    M,
    N,
    K,
    w_row_bytes,
    stride_xm,
    k_per_split,
    QTYPE: tl.constexpr,
    BS: tl.constexpr,
    TS: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    PARTIAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCKS: tl.constexpr,
):
    """Each step decodes `BLOCKS` whole blocks of `BLOCK_N` rows: scales once per block."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ms = tl.arange(0, BLOCK_M)
    k_end = tl.minimum(pid_k * k_per_split + k_per_split, K)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(pid_k * k_per_split, k_end, BLOCKS * BS):
        blocks = k0 // BS + tl.arange(0, BLOCKS)
        block_mask = (rows < N)[:, None, None] & (blocks * BS < k_end)[None, :, None]
        base = rows[:, None, None].to(tl.int64) * w_row_bytes + blocks[None, :, None] * TS
        if QTYPE == 2 or QTYPE == 3:  # each code byte read once, for values i and 16 + i
            w_lo, w_hi = q4_halves(w_ptr, base, block_mask, QTYPE)
            half = tl.arange(0, 16)[None, :]
            x_lo = _load_x(x_ptr, ms, M, stride_xm, blocks, BS, k_end, half)
            x_hi = _load_x(x_ptr, ms, M, stride_xm, blocks, BS, k_end, half + 16)
            w = tl.reshape(tl.join(w_lo, w_hi), [BLOCK_N, BLOCKS * BS])
            x = tl.reshape(tl.join(x_lo, x_hi), [BLOCK_M, BLOCKS * BS])
            acc += tl.sum(x[:, None, :] * w[None, :, :], axis=2)
        elif QTYPE == 12:  # Q4_K: integer codes times activations per sub-block, then its scale and offset
            chunk = tl.arange(0, 4)
            lane = tl.arange(0, 32)
            codes = load_byte(
                w_ptr, base[:, :, :, None] + 16 + chunk[:, None] * 32 + lane[None, :], block_mask[:, :, :, None]
            )
            at = chunk[:, None] * 64 + lane[None, :]
            x_lo = _load_x(x_ptr, ms, M, stride_xm, blocks, BS, k_end, at)
            x_hi = _load_x(x_ptr, ms, M, stride_xm, blocks, BS, k_end, at + 32)
            dot_lo = tl.sum((codes & 15).to(tl.float32)[None] * x_lo[:, None], axis=4)
            dot_hi = tl.sum((codes >> 4).to(tl.float32)[None] * x_hi[:, None], axis=4)
            d_lo, dm_lo = q4_k_sub_block_scales(w_ptr, base, 2 * chunk[None, None, :], block_mask)
            d_hi, dm_hi = q4_k_sub_block_scales(w_ptr, base, 2 * chunk[None, None, :] + 1, block_mask)
            part = d_lo[None] * dot_lo - dm_lo[None] * tl.sum(x_lo, axis=3)[:, None]
            part += d_hi[None] * dot_hi - dm_hi[None] * tl.sum(x_hi, axis=3)[:, None]
            acc += tl.sum(tl.sum(part, axis=3), axis=2)
        else:
            w = block_values(w_ptr, base, tl.arange(0, BS)[None, None, :], block_mask, QTYPE)
            w = tl.reshape(w, [BLOCK_N, BLOCKS * BS])
            cols = k0 + tl.arange(0, BLOCKS * BS)
            x = tl.load(
                x_ptr + ms[:, None].to(tl.int64) * stride_xm + cols[None, :],
                mask=(ms < M)[:, None] & (cols < k_end)[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += tl.sum(x[:, None, :] * w[None, :, :], axis=2)
    out_mask = (ms < M)[:, None] & (rows < N)[None, :]
    if PARTIAL:
        out_offs = (pid_k * M + ms[:, None]).to(tl.int64) * N + rows[None, :]
        tl.store(out_ptr + out_offs, acc, mask=out_mask)
    else:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + rows, mask=rows < N, other=0.0).to(tl.float32)[None, :]
        out_offs = ms[:, None].to(tl.int64) * N + rows[None, :]
        tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _gemm_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    out_ptr,
    M,
    N,
    K,
    w_row_bytes,
    stride_xm,
    QTYPE: tl.constexpr,
    BS: tl.constexpr,
    TS: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if QTYPE == 2 or QTYPE == 3 or QTYPE == 8:  # Q4_0, Q4_1, Q8_0: whole blocks, scales read once per block
            blocks = k0 // 32 + tl.arange(0, BLOCK_K // 32)
            block_mask = (offs_n < N)[:, None, None] & (blocks * 32 < K)[None, :, None]
            base = offs_n[:, None, None].to(tl.int64) * w_row_bytes + blocks[None, :, None] * TS
            if QTYPE == 8:  # Q8_0
                w = block_values(w_ptr, base, tl.arange(0, 32)[None, None, :], block_mask, QTYPE)
                cols = k0 + tl.arange(0, BLOCK_K)
            else:  # each code byte read once; the K order becomes (block, i, nibble), x follows it
                w_lo, w_hi = q4_halves(w_ptr, base, block_mask, QTYPE)
                w = tl.join(w_lo, w_hi)
                cols = (
                    (blocks * 32)[:, None, None] + tl.arange(0, 16)[None, :, None] + 16 * tl.arange(0, 2)[None, None, :]
                )
                cols = tl.reshape(cols, [BLOCK_K])
            w = tl.trans(tl.reshape(w, [BLOCK_N, BLOCK_K]))
        elif QTYPE == 12:  # Q4_K, 64 values a step: one 32-byte chunk, sub-blocks 2c (low) and 2c + 1 (high)
            tl.static_assert(BLOCK_K == 64)
            chunk = (k0 % 256) // 64
            base = offs_n[:, None].to(tl.int64) * w_row_bytes + (k0 // 256) * 144
            row_mask = (offs_n < N)[:, None]
            lane = tl.arange(0, 32)
            codes = load_byte(w_ptr, base + 16 + chunk * 32 + lane[None, :], row_mask)
            d_lo, dm_lo = q4_k_sub_block_scales(w_ptr, base, 2 * chunk, row_mask)
            d_hi, dm_hi = q4_k_sub_block_scales(w_ptr, base, 2 * chunk + 1, row_mask)
            w_lo = d_lo * (codes & 15).to(tl.float32) - dm_lo
            w_hi = d_hi * (codes >> 4).to(tl.float32) - dm_hi
            w = tl.trans(tl.reshape(tl.join(w_lo, w_hi), [BLOCK_N, 64]))
            cols = k0 + tl.reshape(lane[:, None] + 32 * tl.arange(0, 2)[None, :], [64])
        else:
            cols = k0 + tl.arange(0, BLOCK_K)
            w = weight_values(
                w_ptr,
                offs_n[None, :],
                cols[:, None],
                w_row_bytes,
                (cols < K)[:, None] & (offs_n < N)[None, :],
                QTYPE,
                BS,
                TS,
            )
        x = tl.load(
            x_ptr + offs_m[:, None].to(tl.int64) * stride_xm + cols[None, :],
            mask=(offs_m < M)[:, None] & (cols < K)[None, :],
            other=0.0,
        )
        if IEEE:
            acc = tl.dot(x, w, acc, input_precision="ieee")
        else:
            acc = tl.dot(x, w.to(x.dtype), acc)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    out_offs = offs_m[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=(offs_m < M)[:, None] & (offs_n < N)[None, :])


@cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def quantized_linear_triton(
    x: torch.Tensor, qweight, bias: torch.Tensor | None = None, split_k: int | None = None
) -> torch.Tensor:
    """y = x @ W.T (+ bias) in x's dtype; `split_k` overrides the GEMV's K split (for tests)."""
    n, k = qweight.shape
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return out.reshape(*lead, n)
    w_row_bytes = row_bytes(qweight.qtype, k)
    values, size = BLOCK_GEOMETRY[qweight.qtype]
    has_bias = bias is not None
    bias_arg = bias if has_bias else out
    if m <= GEMV_MAX_M:
        block_m = triton.next_power_of_2(m)
        block_k = max(values, 256 // block_m)  # whole blocks; about 4096 products per step
        block_n = min(16, max(2, 4096 // (block_m * block_k)))
        tiles_n = triton.cdiv(n, block_n)
        if split_k is None:
            sms = _multiprocessors(x.device.index or 0) if x.is_cuda else 1
            split_k = min(triton.cdiv(2 * sms, tiles_n), triton.cdiv(k, block_k))
        k_per_split = triton.cdiv(triton.cdiv(k, split_k), block_k) * block_k
        split_k = triton.cdiv(k, k_per_split)
        partial = split_k > 1
        target = torch.empty(split_k, m, n, dtype=torch.float32, device=x.device) if partial else out
        _gemv_kernel[(tiles_n, split_k)](
            x2,
            qweight.data,
            bias_arg,
            target,
            m,
            n,
            k,
            w_row_bytes,
            x2.stride(0),
            k_per_split,
            QTYPE=int(qweight.qtype),
            BS=values,
            TS=size,
            HAS_BIAS=has_bias,
            PARTIAL=partial,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            BLOCKS=block_k // values,
        )
        if partial:
            y = target.sum(0)
            if has_bias:
                y += bias.float()
            out.copy_(y)
    else:
        block_m, block_n, block_k = 32, 64, 64
        grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
        _gemm_kernel[grid](
            x2,
            qweight.data,
            bias_arg,
            out,
            m,
            n,
            k,
            w_row_bytes,
            x2.stride(0),
            QTYPE=int(qweight.qtype),
            BS=values,
            TS=size,
            HAS_BIAS=has_bias,
            IEEE=x.dtype == torch.float32,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            BLOCK_K=block_k,
        )
    return out.reshape(*lead, n)
