"""Token sampling for a batch of requests, each with its own parameters (on the GPU without host syncs).

Per row, in order:
1. temperature 0 (or below): greedy, the first index of the largest logit;
2. p = exp((logit - max logit) / temperature), the probabilities up to a shared factor (max p = 1);
3. top-k (k <= 0 or k >= V: off) keeps p >= the k-th largest p (ties at the edge stay);
4. top-p (p >= 1: off) keeps p >= t, the largest t whose kept tokens (among top-k's) hold at least
   top_p of the top-k mass; the most likely token always stays;
5. min-p keeps p >= min_p (relative to the most likely token);
6. draw by exponential race: argmax of p / E over the kept tokens, E = -log(u), where u in (0, 1)
   comes from a counter-based hash of (seed, step, token id).
A request's token therefore depends only on its own logits, parameters, seed and step.
The twin and the kernel compute the same hash with the same int32 operations (wrapping multiplies).
"""

import torch

from max_kernels.bitmask import apply_token_bitmask
from max_kernels.dispatch import import_triton, use_triton
from max_kernels.penalties import apply_penalties

triton, tl = import_triton()

__all__ = ["apply_penalties", "apply_token_bitmask", "sample", "sample_ref", "sample_triton", "uniform_noise"]

_UNIT = 2.0**-24  # u = (2 * (hash >> 9) + 1) * 2^-24: 24-bit odd numerators, exact in float32
_MUL_1, _MUL_2 = 0x7FEB352D, 0x846CA68B - (1 << 32)  # lowbias32 multipliers as int32
_CHUNK = 1 << 17  # the twin draws a few rows at a time, so its temporaries stay in cache


def _shr(h, bits: int):
    """Logical right shift of int32 values."""
    return (h >> bits) & ((1 << (32 - bits)) - 1)


def _mix(h):
    """lowbias32, a 32-bit xorshift-multiply hash, on int32 with wrapping multiplies."""
    h = h ^ _shr(h, 16)
    h = h * _MUL_1
    h = h ^ _shr(h, 15)
    h = h * _MUL_2
    return h ^ _shr(h, 16)


def _as_int32(x: torch.Tensor) -> torch.Tensor:
    """The low 32 bits of int64 values, as int32."""
    return (((x & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000).to(torch.int32)


def row_keys(seeds: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """int32 [B] keys from 64-bit seeds and steps."""
    seeds, steps = seeds.to(torch.int64), steps.to(torch.int64)
    h = _mix(_as_int32(seeds))
    h = _mix(h ^ _as_int32(seeds >> 32))
    return _mix(h ^ _as_int32(steps))


def uniform_noise(seeds: torch.Tensor, steps: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """float32 [B, V] uniforms in (0, 1), one per (seed, step, token id)."""
    tokens = torch.arange(vocab_size, device=seeds.device, dtype=torch.int32)
    h = _mix(row_keys(seeds, steps)[:, None] ^ tokens)
    return (_shr(h, 9) * 2 + 1).to(torch.float32) * _UNIT


def sample(logits, temperature, top_k, top_p, min_p, seeds, steps) -> torch.Tensor:
    """ids[B] (int64) from logits[B, V]; the other arguments are per-row tensors [B]."""
    if use_triton(logits):
        return sample_triton(logits, temperature, top_k, top_p, min_p, seeds, steps)
    return sample_ref(logits, temperature, top_k, top_p, min_p, seeds, steps)


def sample_ref(logits, temperature, top_k, top_p, min_p, seeds, steps) -> torch.Tensor:
    """PyTorch twin, made for the CPU: its top-k / top-p window search reads sizes on the host."""
    batch, vocab = logits.shape
    if batch == 0:
        return torch.empty(0, dtype=torch.int64, device=logits.device)
    logits = logits.float()
    greedy = temperature <= 0
    temp = torch.where(greedy, 1.0, temperature.float())[:, None]
    probs = torch.exp((logits - logits.max(-1, keepdim=True).values) / temp)
    keep_from = torch.maximum(min_p.float()[:, None], _top_k_top_p_floor(probs, top_k, top_p))
    drawn = []
    rows = max(1, _CHUNK // vocab)
    for start in range(0, batch, rows):
        chunk = slice(start, start + rows)
        exponential = -torch.log(uniform_noise(seeds[chunk], steps[chunk], vocab))
        kept = probs[chunk] >= keep_from[chunk]
        drawn.append(torch.where(kept, probs[chunk] / exponential, -1.0).argmax(-1))
    return torch.where(greedy, logits.argmax(-1), torch.cat(drawn))


def _top_k_top_p_floor(probs: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """[B, 1] smallest kept p under top-k and top-p (0 where both are off).

    Ranks only a window of the most likely tokens (the largest k, or 256 for top-p alone), widening
    it only while some row's nucleus does not fit; a full sort is the last resort.
    """
    batch, vocab = probs.shape
    k = top_k.to(torch.int64)
    k_on = (k > 0) & (k < vocab)
    p_on = top_p < 1
    floor = torch.zeros(batch, 1, device=probs.device)
    if not (bool(k_on.any()) or bool(p_on.any())):
        return floor
    width = int(torch.where(k_on, k, 1).max())
    if bool((p_on & ~k_on).any()):
        width = max(width, 256)
    while True:
        width = min(width, vocab)
        ranked = probs.topk(width, -1).values if width < vocab else probs.sort(-1, descending=True).values
        k_floor = torch.where(k_on[:, None], ranked.gather(1, (k.clamp(1, width) - 1)[:, None]), floor)
        if not bool(p_on.any()):
            return k_floor
        target = top_p.float()[:, None] * torch.where(probs >= k_floor, probs, 0.0).sum(-1, keepdim=True)
        mass = torch.where(ranked >= k_floor, ranked, 0.0).cumsum(-1)
        if width == vocab or bool((mass[:, -1:] >= target)[p_on].all()):
            break
        width *= 8
    edge = (mass < target).sum(-1, keepdim=True).clamp(max=width - 1)
    return torch.where(p_on[:, None], torch.maximum(k_floor, ranked.gather(1, edge)), k_floor)


@triton.jit
def _shr_tl(h, BITS: tl.constexpr):
    return (h >> BITS) & ((1 << (32 - BITS)) - 1)


@triton.jit
def _mix_tl(h):
    h = h ^ _shr_tl(h, 16)
    h = h * 0x7FEB352D
    h = h ^ _shr_tl(h, 15)
    h = h * -2073254261  # 0x846CA68B as int32
    return h ^ _shr_tl(h, 16)


@triton.jit
def _probs(logits_ptr, offs, vocab, row_max, temp):
    logit = tl.load(logits_ptr + offs, mask=offs < vocab, other=float("-inf")).to(tl.float32)
    return tl.exp((logit - row_max) / temp)


@triton.jit
def _sample_kernel(
    logits_ptr,
    temperature_ptr,
    top_k_ptr,
    top_p_ptr,
    min_p_ptr,
    keys_ptr,
    out_ptr,
    vocab,
    stride_row,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0)
    row_logits = logits_ptr + row.to(tl.int64) * stride_row
    arange = tl.arange(0, BLOCK).to(tl.int64)
    # Pass 1: the largest logit and its first index (the greedy token).
    best = float("-inf")
    best_id = tl.zeros([], dtype=tl.int64)
    for start in range(0, vocab, BLOCK):
        offs = start + arange
        logit = tl.load(row_logits + offs, mask=offs < vocab, other=float("-inf")).to(tl.float32)
        chunk_best = tl.max(logit, 0)
        chunk_id = tl.argmax(logit, 0, tie_break_left=True).to(tl.int64) + start
        if chunk_best > best:
            best_id = chunk_id
            best = chunk_best
    result = best_id
    temp = tl.load(temperature_ptr + row).to(tl.float32)
    if temp > 0:
        top_k = tl.load(top_k_ptr + row).to(tl.int64)
        top_p = tl.load(top_p_ptr + row).to(tl.float32)
        keep_from = tl.load(min_p_ptr + row).to(tl.float32)
        k_floor = 0.0
        if (top_k > 0) & (top_k < vocab):
            # Largest float (searched bit by bit; p in [0, 1] has bit 30 clear) with >= k tokens at or above it.
            bits = 0
            for i in range(30):
                trial = bits | (1 << (29 - i))
                threshold = trial.to(tl.float32, bitcast=True)
                count = 0
                for start in range(0, vocab, BLOCK):
                    p = _probs(row_logits, start + arange, vocab, best, temp)
                    count += tl.sum((p >= threshold).to(tl.int32), 0)
                if count >= top_k:
                    bits = trial
            k_floor = bits.to(tl.float32, bitcast=True)
        keep_from = tl.maximum(keep_from, k_floor)
        if top_p < 1:
            total = 0.0
            for start in range(0, vocab, BLOCK):
                p = _probs(row_logits, start + arange, vocab, best, temp)
                total += tl.sum(tl.where(p >= k_floor, p, 0.0), 0)
            target = top_p * total
            bits = 0
            for i in range(30):
                trial = bits | (1 << (29 - i))
                threshold = tl.maximum(trial.to(tl.float32, bitcast=True), k_floor)
                mass = 0.0
                for start in range(0, vocab, BLOCK):
                    p = _probs(row_logits, start + arange, vocab, best, temp)
                    mass += tl.sum(tl.where(p >= threshold, p, 0.0), 0)
                if mass >= target:
                    bits = trial
            keep_from = tl.maximum(keep_from, bits.to(tl.float32, bitcast=True))
        # Exponential race over the kept tokens.
        key = tl.load(keys_ptr + row)
        best_score = -2.0
        for start in range(0, vocab, BLOCK):
            offs = start + arange
            p = _probs(row_logits, offs, vocab, best, temp)
            h = _mix_tl(key ^ offs.to(tl.int32))
            u = (_shr_tl(h, 9) * 2 + 1).to(tl.float32) * 5.9604644775390625e-08
            score = tl.where((p >= keep_from) & (offs < vocab), p / -tl.log(u), -1.0)
            chunk_best = tl.max(score, 0)
            chunk_id = tl.argmax(score, 0, tie_break_left=True).to(tl.int64) + start
            if chunk_best > best_score:
                result = chunk_id
                best_score = chunk_best
    tl.store(out_ptr + row, result)


def sample_triton(logits, temperature, top_k, top_p, min_p, seeds, steps) -> torch.Tensor:
    """Triton sampler: one program per row; top-k and top-p thresholds by bitwise search over p."""
    batch, vocab = logits.shape
    out = torch.empty(batch, dtype=torch.int64, device=logits.device)
    if batch:
        if logits.stride(-1) != 1:
            logits = logits.contiguous()
        keys = row_keys(seeds, steps)
        block = min(4096, triton.next_power_of_2(vocab))
        _sample_kernel[(batch,)](
            logits, temperature, top_k, top_p, min_p, keys, out, vocab, logits.stride(0), BLOCK=block
        )
    return out
