"""Fetch a Hugging Face Hub repository's config and chosen weights into the local cache."""

import re
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .model import ModelConfig
from .values import one_line

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_META_PATTERNS = ("*.json", "*.jinja", "tokenizer*", "*.model", "*.txt")


def looks_local(path: str) -> bool:
    """Whether a model path that does not exist was meant as a local path rather than a repo id."""
    if path.startswith(("/", "./", "../", "~", ".\\")) or path.count("/") > 1:
        return True
    return path.endswith((".gguf", ".safetensors", ".json")) or not _REPO_ID.match(path)


def _fail(repo_id: str, exc: Exception) -> ConfigError:
    reason = one_line(f"{type(exc).__name__}: {exc}")[:240]
    return ConfigError(
        f"--model-path {repo_id}: not a local path, and fetching it from the Hugging Face Hub failed ({reason}); "
        "check the name, revision and network, or give a local folder or GGUF file"
    )


def download_repo(repo_id: str, model: ModelConfig, weight_names: Callable[[list[str]], list[str]]) -> tuple[Path, tuple[Path, ...]]:
    """(snapshot folder with config files, weight files) of a Hub repo.

    `weight_names(all_file_names)` picks the weight files to fetch (e.g. one GGUF out of many).
    Config files come from --huggingface-model-revision, weights from --huggingface-weight-revision.
    """
    try:
        from huggingface_hub import HfApi, snapshot_download

        sub = f"{model.subfolder.strip('/')}/" if model.subfolder else ""

        def fetch(revision: str, patterns) -> Path:
            """The snapshot folder of `revision` holding the files of `patterns` under the subfolder."""
            allow = [sub + pattern for pattern in patterns]
            return Path(
                snapshot_download(repo_id, revision=revision, allow_patterns=allow, force_download=model.force_download)
            )

        root = fetch(model.huggingface_model_revision, _META_PATTERNS)
        try:
            names = HfApi().list_repo_files(repo_id, revision=model.huggingface_weight_revision)
        except Exception:  # offline: list what the local cache holds
            cached = Path(snapshot_download(repo_id, revision=model.huggingface_weight_revision, local_files_only=True))
            names = [str(path.relative_to(cached)) for path in cached.rglob("*") if path.is_file()]
        names = [name[len(sub):] for name in names if name.startswith(sub)]
        chosen = weight_names(names)
        weights_root = fetch(model.huggingface_weight_revision, chosen)
    except ConfigError:
        raise
    except Exception as exc:  # network, auth, missing repo or revision: all become one line
        raise _fail(repo_id, exc) from None
    return root / sub if sub else root, tuple(weights_root / sub / name for name in chosen)
