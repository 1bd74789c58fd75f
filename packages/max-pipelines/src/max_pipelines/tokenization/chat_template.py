"""Turning one user prompt into token ids through the model's chat template."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def apply_chat_template(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Token ids of `prompt` as one user message followed by the assistant's generation prompt.

    The template writes any special tokens itself, so the rendered text is encoded without
    adding more. A tokenizer without a template encodes the raw prompt (with its usual specials).
    """
    if not tokenizer.chat_template:
        return tokenizer.encode(prompt)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer.encode(text, add_special_tokens=False)
