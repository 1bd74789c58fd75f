"""Frequency, presence and repetition penalties, applied to logits in place.

- frequency / presence (OpenAI): over generated tokens, logit -= frequency * count + presence * (count > 0);
- repetition (HF): over prompt and generated tokens, a positive logit is divided by the penalty and
  a negative one multiplied by it.
Repetition is applied first, then frequency and presence. Penalties are per row [B].
"""

import torch

from max_kernels.dispatch import import_triton, use_triton

triton, tl = import_triton()


def apply_penalties(logits, output_counts, prompt_mask, frequency, presence, repetition) -> torch.Tensor:
    """Penalize `logits[B, V]` in place and return them; `output_counts[B, V]` counts generated
    tokens, `prompt_mask[B, V]` (bool) marks prompt tokens."""
    if output_counts.shape != logits.shape or prompt_mask.shape != logits.shape:
        raise ValueError(
            f"penalty tables must match logits {tuple(logits.shape)}: output_counts "
            f"{tuple(output_counts.shape)}, prompt_mask {tuple(prompt_mask.shape)}"
        )
    if use_triton(logits):
        return apply_penalties_triton(logits, output_counts, prompt_mask, frequency, presence, repetition)
    return apply_penalties_ref(logits, output_counts, prompt_mask, frequency, presence, repetition)


def apply_penalties_ref(logits, output_counts, prompt_mask, frequency, presence, repetition) -> torch.Tensor:
    """PyTorch twin."""
    counts = output_counts.to(logits.dtype)
    seen = prompt_mask | (output_counts > 0)
    rep = repetition.to(logits.dtype)[:, None]
    penalized = torch.where(logits > 0, logits / rep, logits * rep)
    logits.copy_(torch.where(seen, penalized, logits))
    logits -= frequency.to(logits.dtype)[:, None] * counts
    logits -= presence.to(logits.dtype)[:, None] * (output_counts > 0).to(logits.dtype)
    return logits


@triton.jit
def _penalties_kernel(
    logits_ptr,
    counts_ptr,
    prompt_ptr,
    frequency_ptr,
    presence_ptr,
    repetition_ptr,
    vocab,
    stride_logits,
    stride_counts,
    stride_prompt,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < vocab
    logit = tl.load(logits_ptr + row * stride_logits + offs, mask=mask, other=0.0)
    count = tl.load(counts_ptr + row * stride_counts + offs, mask=mask, other=0)
    in_prompt = tl.load(prompt_ptr + row * stride_prompt + offs, mask=mask, other=0) != 0
    rep = tl.load(repetition_ptr + row).to(logit.dtype)
    penalized = tl.where(logit > 0, logit / rep, logit * rep)
    logit = tl.where(in_prompt | (count > 0), penalized, logit)
    logit -= tl.load(frequency_ptr + row).to(logit.dtype) * count.to(logit.dtype)
    logit -= tl.load(presence_ptr + row).to(logit.dtype) * (count > 0).to(logit.dtype)
    tl.store(logits_ptr + row * stride_logits + offs, logit, mask=mask)


def apply_penalties_triton(logits, output_counts, prompt_mask, frequency, presence, repetition) -> torch.Tensor:
    batch, vocab = logits.shape
    if batch and vocab:
        block = 1024
        prompt = prompt_mask.view(torch.uint8) if prompt_mask.dtype == torch.bool else prompt_mask
        _penalties_kernel[(batch, triton.cdiv(vocab, block))](
            logits,
            output_counts,
            prompt,
            frequency,
            presence,
            repetition,
            vocab,
            logits.stride(0),
            output_counts.stride(0),
            prompt.stride(0),
            BLOCK=block,
        )
    return logits
