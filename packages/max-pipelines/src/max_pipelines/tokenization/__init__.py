"""Tokenizers, chat templates and incremental detokenization."""

from max_pipelines.tokenization.chat_template import apply_chat_template
from max_pipelines.tokenization.tokenizer import load_tokenizer

__all__ = ["apply_chat_template", "load_tokenizer"]
