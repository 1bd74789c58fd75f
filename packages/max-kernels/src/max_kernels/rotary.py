"""Rotary position embeddings: the cos/sin cache (with HF `rope_scaling` variants) and its application.

Layouts: `neox=True` rotates the two halves of the rotary features against each other (HF
`rotate_half`: Llama, Qwen, Mistral, Gemma, Phi-3); `neox=False` rotates interleaved pairs
`(x[2i], x[2i+1])` (GPT-J). Only the first `rotary_dim` features of each head are rotated.

The cache row for position `p` is `[cos(p * f_0..f_{r/2-1}), sin(p * f_0..f_{r/2-1})]` in float32,
already multiplied by the scaling's attention factor (yarn, longrope).
"""

import math

import torch

from max_kernels.dispatch import import_triton, use_triton
from max_kernels.fp8 import cache_value

triton, tl = import_triton()


def _base_inv_freq(rotary_dim: int, base: float, device, divisors: list[float] | None = None) -> torch.Tensor:
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64, device=device).float() / rotary_dim
    if divisors is None:
        return 1.0 / (base**exponents)
    return 1.0 / (torch.tensor(divisors, dtype=torch.float32, device=device) * base**exponents)


def _llama3(inv_freq: torch.Tensor, s: dict) -> torch.Tensor:
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old_len = s["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old_len / high) * ~(wavelen > old_len / low)
    return torch.where(medium, smoothed, scaled)


def _yarn(rotary_dim: int, base: float, s: dict, max_pos: int, device) -> tuple[torch.Tensor, float]:
    original = s["original_max_position_embeddings"]
    factor = s.get("factor") or s.get("max_position_embeddings", max_pos) / original
    attention_factor = s.get("attention_factor")
    if attention_factor is None:

        def mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        m, m_all = s.get("mscale"), s.get("mscale_all_dim")
        attention_factor = mscale(factor, m) / mscale(factor, m_all) if m and m_all else mscale(factor)
    beta_fast, beta_slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1

    def correction_dim(rotations):
        return rotary_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, rotary_dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(rotary_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1).to(device)
    pos_freqs = base ** (torch.arange(0, rotary_dim, 2).to(device=device, dtype=torch.float) / rotary_dim)
    extrapolation = 1 - ramp
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, float(attention_factor)


def _longrope_factor(s: dict, max_pos: int) -> float:
    original = s["original_max_position_embeddings"]
    factor = s.get("factor") or s.get("max_position_embeddings", max_pos) / original
    attention_factor = s.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    return float(attention_factor)


def _cos_sin(inv_freq: torch.Tensor, positions: torch.Tensor, attention_factor: float) -> torch.Tensor:
    freqs = positions.float()[:, None] * inv_freq[None, :]
    return torch.cat([freqs.cos() * attention_factor, freqs.sin() * attention_factor], dim=-1)


def original_context(scaling: dict, max_positions: int) -> int:
    """The context a llama3 / yarn / longrope scaling extends: its `original_max_position_embeddings`,
    else the config's `max_position_embeddings`, else `max_positions`."""
    return scaling.get("original_max_position_embeddings") or scaling.get("max_position_embeddings") or max_positions


def rope_cos_sin_cache(rotary_dim: int, max_positions: int, base: float, scaling: dict | None, device) -> torch.Tensor:
    """Float32 `[max_positions, rotary_dim]`: cos of the half frequencies, then sin.

    `scaling` is the HF `rope_scaling` / `rope_parameters` dict (`rope_type` or `type`: default,
    linear, dynamic, llama3, yarn, longrope). It may carry `max_position_embeddings` (the HF
    config's), which defaults to `max_positions`. The cache is static, as a serving engine needs:
    `dynamic` uses the NTK base for a sequence of `max_positions` tokens (HF recomputes it per
    sequence length); `longrope` uses the short factors below `original_max_position_embeddings`
    and the long factors from there on, then appends the long factors' rows for the positions below
    it (read by the tokens of longer sequences, see `longrope_positions`).
    """
    s = dict(scaling or {})
    kind = s.get("rope_type", s.get("type", "default"))
    if kind in ("llama3", "yarn", "longrope"):
        s["original_max_position_embeddings"] = original_context(s, max_positions)
    positions = torch.arange(max_positions, device=device)
    if kind == "default":
        return _cos_sin(_base_inv_freq(rotary_dim, base, device), positions, 1.0)
    if kind == "linear":
        return _cos_sin(_base_inv_freq(rotary_dim, base, device) / s["factor"], positions, 1.0)
    if kind == "llama3":
        return _cos_sin(_llama3(_base_inv_freq(rotary_dim, base, device), s), positions, 1.0)
    if kind == "dynamic":
        original = s.get("max_position_embeddings", max_positions)
        seq_len = max(max_positions, original)
        factor = s["factor"]
        ntk_base = base * ((factor * seq_len / original) - (factor - 1)) ** (rotary_dim / (rotary_dim - 2))
        return _cos_sin(_base_inv_freq(rotary_dim, ntk_base, device), positions, 1.0)
    if kind == "yarn":
        inv_freq, attention_factor = _yarn(rotary_dim, base, s, max_positions, device)
        return _cos_sin(inv_freq, positions, attention_factor)
    if kind == "longrope":
        attention_factor = _longrope_factor(s, max_positions)
        original = s["original_max_position_embeddings"]
        short = _base_inv_freq(rotary_dim, base, device, s["short_factor"])
        long = _base_inv_freq(rotary_dim, base, device, s["long_factor"])
        return torch.cat(
            [
                _cos_sin(short, positions[:original], attention_factor),
                _cos_sin(long, positions[original:], attention_factor),
                _cos_sin(long, positions[:original], attention_factor),
            ]
        )
    raise ValueError(f"rope_scaling type {kind!r} is not supported (use linear, dynamic, llama3, yarn or longrope)")


def longrope_positions(
    positions: torch.Tensor, cu_seqlens_q: torch.Tensor, seq_lens: torch.Tensor, original: int, max_positions: int
) -> torch.Tensor:
    """The table rows a longrope model's tokens read. Transformers rotates every token of a sequence
    longer than `original` with the long factors, so the tokens of a request whose `seq_lens` exceeds
    it read, for positions below `original`, the long rows appended at `max_positions`."""
    q_lens = cu_seqlens_q[1:] - cu_seqlens_q[:-1]
    long = torch.repeat_interleave(seq_lens > original, q_lens, output_size=positions.shape[0])
    return torch.where(long & (positions < original), positions + max_positions, positions)


@triton.jit
def rotate_pair(x1, x2, cos, sin):
    """Rotate-half RoPE of the float32 feature pairs `(x1, x2)`."""
    return x1 * cos - x2 * sin, x2 * cos + x1 * sin


@triton.jit
def rotate_heads(
    src,
    src_stride_h,
    dst,
    dst_stride_h,
    n_heads,
    cos,
    sin,
    scale_ptr,
    head_dim,
    HALF: tl.constexpr,
    NEOX: tl.constexpr,
    FP8: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Rotate the first 2*HALF features of `n_heads` heads at `src` into `dst`, copy the rest; with FP8,
    `dst` is a float8 cache row and takes `x / scale` (`cache_value`)."""
    heads = tl.arange(0, BLOCK_H)[:, None]
    i = tl.arange(0, BLOCK_R)[None, :]
    rmask = (heads < n_heads) & (i < HALF)
    if NEOX:
        first, second = i, i + HALF
    else:
        first, second = 2 * i, 2 * i + 1
    src = src + heads * src_stride_h
    dst = dst + heads * dst_stride_h
    x1 = tl.load(src + first, mask=rmask, other=0.0).to(tl.float32)
    x2 = tl.load(src + second, mask=rmask, other=0.0).to(tl.float32)
    r1, r2 = rotate_pair(x1, x2, cos, sin)
    # rounded to the input's dtype first: a rotated q or k, whatever `dst` then stores
    r1, r2 = r1.to(src.dtype.element_ty), r2.to(src.dtype.element_ty)
    tl.store(dst + first, cache_value(r1, scale_ptr, FP8).to(dst.dtype.element_ty), mask=rmask)
    tl.store(dst + second, cache_value(r2, scale_ptr, FP8).to(dst.dtype.element_ty), mask=rmask)
    if BLOCK_D > 0:
        d = tl.arange(0, BLOCK_D)[None, :] + 2 * HALF
        pmask = (heads < n_heads) & (d < head_dim)
        rest = tl.load(src + d, mask=pmask)
        tl.store(dst + d, cache_value(rest, scale_ptr, FP8).to(dst.dtype.element_ty), mask=pmask)


@triton.jit
def cos_sin_row(cos_sin_ptr, row_offset, HALF: tl.constexpr, BLOCK_R: tl.constexpr):
    """The cos and sin halves of one table row, each `[1, BLOCK_R]` (zero past HALF)."""
    i = tl.arange(0, BLOCK_R)[None, :]
    cos = tl.load(cos_sin_ptr + row_offset + i, mask=i < HALF, other=0.0)
    sin = tl.load(cos_sin_ptr + row_offset + HALF + i, mask=i < HALF, other=0.0)
    return cos, sin


@triton.jit
def _rope_kernel(
    x_ptr,
    out_ptr,
    pos_ptr,
    cache_ptr,
    n_heads,
    x_stride_t,
    x_stride_h,
    out_stride_t,
    out_stride_h,
    cache_stride,
    head_dim,
    HALF: tl.constexpr,
    NEOX: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One token per program: rotates the first 2*HALF features of every head, copies the rest."""
    t = tl.program_id(0).to(tl.int64)
    cos, sin = cos_sin_row(cache_ptr, tl.load(pos_ptr + t).to(tl.int64) * cache_stride, HALF, BLOCK_R)
    rotate_heads(
        x_ptr + t * x_stride_t, x_stride_h, out_ptr + t * out_stride_t, out_stride_h, n_heads, cos, sin,
        cache_ptr, head_dim, HALF, NEOX, False, BLOCK_H, BLOCK_R, BLOCK_D,
    )


def _rope_one_triton(x, positions, cos_sin_cache, neox):
    out = torch.empty_like(x)
    t, h, d = x.shape
    half = cos_sin_cache.shape[1] // 2
    if t == 0:
        return out
    if x.stride(2) != 1:
        x = x.contiguous()
    _rope_kernel[(t,)](
        x,
        out,
        positions,
        cos_sin_cache,
        h,
        x.stride(0),
        x.stride(1),
        out.stride(0),
        out.stride(1),
        cos_sin_cache.stride(0),
        d,
        HALF=half,
        NEOX=neox,
        BLOCK_H=triton.next_power_of_2(h),
        BLOCK_R=triton.next_power_of_2(half),
        BLOCK_D=triton.next_power_of_2(d - 2 * half) if d > 2 * half else 0,
    )
    return out


def apply_rope_triton(q, k, positions, cos_sin_cache, neox):
    return _rope_one_triton(q, positions, cos_sin_cache, neox), _rope_one_triton(k, positions, cos_sin_cache, neox)


def _rope_one_ref(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor, neox: bool) -> torch.Tensor:
    """`x * cos + partner(x) * signed_sin` over the rotary features, where `partner` swaps the pairs."""
    rot = cos.shape[-1]
    xr = x if rot == x.shape[-1] and x.dtype == torch.float32 else x[..., :rot].float()
    if neox:
        partner = xr.roll(rot // 2, dims=-1)
    else:
        partner = xr.unflatten(-1, (rot // 2, 2)).flip(-1).flatten(-2)
    rotated = torch.addcmul(xr * cos, partner, signed_sin)
    rotated = rotated if rotated.dtype == x.dtype else rotated.to(x.dtype)
    return rotated if rot == x.shape[-1] else torch.cat([rotated, x[..., rot:]], dim=-1)


def rope_factors_ref(positions, cos_sin_cache, neox):
    """`(cos, signed_sin)`, each `[T, 1, rotary_dim]`: what `apply_rope_ref` multiplies by. The same
    for every layer of a step, so a caller may compute them once and pass them as `factors`."""
    cos, sin = cos_sin_cache[positions].unsqueeze(1).chunk(2, dim=-1)
    if neox:
        return torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)
    return cos.repeat_interleave(2, dim=-1), torch.stack([-sin, sin], dim=-1).flatten(-2)


def apply_rope_ref(q, k, positions, cos_sin_cache, neox, factors=None):
    cos, signed_sin = factors if factors is not None else rope_factors_ref(positions, cos_sin_cache, neox)
    return _rope_one_ref(q, cos, signed_sin, neox), _rope_one_ref(k, cos, signed_sin, neox)


def rotate(
    x: torch.Tensor, positions: torch.Tensor, cos_sin_cache: torch.Tensor, neox: bool, factors=None
) -> torch.Tensor:
    """`apply_rope` for one tensor `x [T, H, D]`, e.g. q and k side by side (one op for both)."""
    if use_triton(x):
        return _rope_one_triton(x, positions, cos_sin_cache, neox)
    cos, signed_sin = factors if factors is not None else rope_factors_ref(positions, cos_sin_cache, neox)
    return _rope_one_ref(x, cos, signed_sin, neox)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, cos_sin_cache: torch.Tensor, neox: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate `q [T, Hq, D]` and `k [T, Hk, D]` by `positions [T]`; returns new tensors."""
    fn = apply_rope_triton if use_triton(q) else apply_rope_ref
    return fn(q, k, positions, cos_sin_cache, neox)
