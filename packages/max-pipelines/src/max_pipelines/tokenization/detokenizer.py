"""Token-by-token text output that never splits a character and never prints a stop string."""

from __future__ import annotations

from collections.abc import Callable, Sequence

_REPLACEMENT = "\ufffd"
_CONTEXT_TOKENS = 5


def _decoder(tokenizer) -> Callable[[list[int]], str]:
    """`ids -> text`, special tokens skipped, no clean-up of spaces. A transformers tokenizer backed by
    `tokenizers` whose decoding is transformers' own (not overridden) is decoded by its backend
    directly: the same text without transformers' conversions on every call (a detokenizer decodes
    twice a token)."""
    cls = type(tokenizer)
    if cls.__module__.startswith("transformers."):
        try:
            from transformers.tokenization_utils_base import PreTrainedTokenizerBase
            from transformers.tokenization_utils_tokenizers import TokenizersBackend
        except ImportError:  # transformers 4: no shortcut
            pass
        else:
            if (
                isinstance(tokenizer, TokenizersBackend)
                and cls._decode is TokenizersBackend._decode
                and cls.decode is PreTrainedTokenizerBase.decode
            ):
                backend = tokenizer.backend_tokenizer
                return lambda ids: backend.decode(ids, skip_special_tokens=True)
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


class IncrementalDetokenizer:
    """Turns generated token ids into text deltas.

    Each step decodes the tokens from `prefix_offset` to the end and compares with the decoding of the
    tokens from `prefix_offset` to `read_offset`: the difference is new text, unless it ends in an
    incomplete UTF-8 sequence (a replacement character), in which case it waits for more tokens.
    Decoding a few tokens of context keeps tokenizers that drop a word's leading space at the start of
    a decode (SentencePiece) correct. Special tokens are skipped.

    Stop strings: text that could still grow into a stop string is held back; when one appears, the
    text is cut just before it and `stopped` is set.
    """

    def __init__(self, tokenizer, prompt_token_ids: Sequence[int], stop: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self._decode = _decoder(tokenizer)
        self.stop = tuple(s for s in stop if s)
        self.token_ids: list[int] = list(prompt_token_ids[-_CONTEXT_TOKENS:])
        self.prefix_offset = 0
        self.read_offset = len(self.token_ids)
        self.text = ""  # everything decoded from the generated tokens, stop strings cut off
        self.num_emitted = 0
        self.stopped = False

    def add_token(self, token_id: int) -> str:
        """Add one generated token; returns the text now safe to print (maybe empty)."""
        if self.stopped:
            return ""
        self.token_ids.append(token_id)
        prefix = self._decode(self.token_ids[self.prefix_offset : self.read_offset])
        full = self._decode(self.token_ids[self.prefix_offset :])
        if len(full) > len(prefix) and not full.endswith(_REPLACEMENT):
            new_text = full[len(prefix) :]
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.token_ids)
            self._append(new_text)
        return self._take(self._printable_end())

    def finish(self) -> str:
        """Flush the text held back for stop strings at the end of the request."""
        return self._take(len(self.text))

    def _append(self, new_text: str) -> None:
        start = max(0, len(self.text) - max((len(s) for s in self.stop), default=0) + 1)
        self.text += new_text
        hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True

    def _printable_end(self) -> int:
        if self.stopped:
            return len(self.text)
        held = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), held, -1):
                if self.text.endswith(s[:n]):
                    held = n
                    break
        return len(self.text) - held

    def _take(self, end: int) -> str:
        end = max(end, self.num_emitted)
        delta = self.text[self.num_emitted : end]
        self.num_emitted = end
        return delta
