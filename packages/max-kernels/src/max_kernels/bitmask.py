"""Token bitmask (structured output): bit j of word w of a row allows token 32 * w + j; every other
token's logit becomes -inf, in place."""

import torch

from max_kernels.dispatch import import_triton, use_triton

triton, tl = import_triton()


def apply_token_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Mask `logits[B, V]` in place with `bitmask` (int32 [B, ceil(V / 32)]) and return them."""
    batch, vocab = logits.shape
    if bitmask.dtype != torch.int32 or bitmask.shape[0] != batch or bitmask.shape[1] * 32 < vocab:
        raise ValueError(
            f"token bitmask must be int32 [{batch}, {(vocab + 31) // 32}], got {bitmask.dtype} {tuple(bitmask.shape)}"
        )
    if use_triton(logits):
        return apply_token_bitmask_triton(logits, bitmask)
    return apply_token_bitmask_ref(logits, bitmask)


def apply_token_bitmask_ref(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """PyTorch twin."""
    vocab = logits.shape[-1]
    tokens = torch.arange(vocab, device=logits.device)
    words = bitmask.to(torch.int64)[:, tokens // 32]
    allowed = ((words >> (tokens % 32)) & 1).bool()
    return logits.masked_fill_(~allowed, float("-inf"))


@triton.jit
def _bitmask_kernel(logits_ptr, bitmask_ptr, vocab, stride_logits, stride_mask, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < vocab
    words = tl.load(bitmask_ptr + row * stride_mask + offs // 32, mask=mask, other=0)
    allowed = ((words >> (offs % 32)) & 1) != 0
    tl.store(logits_ptr + row * stride_logits + offs, float("-inf"), mask=mask & ~allowed)


def apply_token_bitmask_triton(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    batch, vocab = logits.shape
    if batch and vocab:
        block = 1024
        _bitmask_kernel[(batch, triton.cdiv(vocab, block))](
            logits, bitmask, vocab, logits.stride(0), bitmask.stride(0), BLOCK=block
        )
    return logits
