"""`SavedTokenizer`: a tokenizer saved by transformers (`tokenizer.json`), run through the `tokenizers`
library and jinja2 alone.

Importing transformers takes seconds, most of the engine's cold start after torch; the engine only
needs encode, decode, the chat template and the special tokens, which the saved files hold. The
chat template renders the way transformers renders it: a sandboxed jinja2 environment that trims
blocks, with `raise_exception`, `strftime_now` and the special tokens in scope.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cached_property
from pathlib import Path

from tokenizers import Tokenizer

_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


def _token_text(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


class SavedTokenizer:
    """Encode, decode and chat-template with the files `save_pretrained` wrote into `folder`."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text())
        template_file = folder / "chat_template.jinja"
        self.chat_template: str | None = (
            template_file.read_text() if template_file.is_file() else config.get("chat_template")
        )
        self.special_tokens = {k: _token_text(config.get(k)) for k in _SPECIAL_KEYS}
        for key, text in self.special_tokens.items():
            setattr(self, key, text)
            setattr(self, f"{key}_id", None if text is None else self.backend.token_to_id(text))

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False) -> str:
        if clean_up_tokenization_spaces:
            raise ValueError("SavedTokenizer does not clean up tokenization spaces")
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    @cached_property
    def _environment(self):
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise jinja2.exceptions.TemplateError(message)

        def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        return env

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = False, tokenize: bool = True):
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template: pass --chat-template")
        text = self._environment.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, **self.special_tokens
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text
