"""`load_tokenizer`: the Hugging Face tokenizer of a model, with its chat template.

Building a tokenizer from GGUF metadata takes seconds (tens of thousands of tokens and merges
are parsed in Python), so the built tokenizer is saved once under the cache folder, keyed by
the file's path, size and modification time, and reloaded from there as a `SavedTokenizer`
(a fraction of a second, and no transformers import: it is imported only to build one).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

from max_config import ConfigError

from max_pipelines.tokenization.saved_tokenizer import SavedTokenizer


def tokenizer_cache_root() -> Path:
    """`$MAX_CACHE_DIR/tokenizers`, default `~/.cache/max/tokenizers` (honours XDG_CACHE_HOME)."""
    base = os.environ.get("MAX_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "max"
    return Path(base) / "tokenizers"


def _cache_key(path: Path) -> str:
    stat = path.stat()
    ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{version('transformers')}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def gguf_tokenizer(path: Path, cache_root: Path | None = None):
    """The tokenizer described by a GGUF file's metadata, from the cache when it was built before."""
    cached = (cache_root or tokenizer_cache_root()) / _cache_key(path)
    if (cached / "tokenizer_config.json").is_file():
        return SavedTokenizer(cached)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cached.parent))
    except OSError:
        return tokenizer  # a read-only cache only costs the next run a rebuild
    try:
        tokenizer.save_pretrained(staging)
        staging.rename(cached)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process filled the entry first
    return SavedTokenizer(cached) if (cached / "tokenizer_config.json").is_file() else tokenizer


def load_tokenizer(model_files):
    """AutoTokenizer for `model_files` (a `max_config.ModelFiles`).

    Safetensors models read the tokenizer files of `root`; GGUF models build it from the first
    weight file's metadata, or, where that cannot be done (transformers builds tokenizers for the
    GGUF architectures it knows, not for those of `--custom-architectures`), read the tokenizer
    files beside the file. `model_files.chat_template` (the `--chat-template` override or the
    file's own template), when set, replaces the tokenizer's template.
    """
    if model_files.weight_format == "gguf":
        path = Path(model_files.weight_files[0])
        try:
            tokenizer = gguf_tokenizer(path)
        except ValueError as e:
            if not any((path.parent / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
                raise ConfigError(
                    f"{path}: no tokenizer can be built from its metadata ({e}); put the model's tokenizer "
                    "files (tokenizer.json, tokenizer_config.json) beside it"
                ) from e
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path.parent)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_files.root)
    if model_files.chat_template:
        tokenizer.chat_template = model_files.chat_template
    return tokenizer
