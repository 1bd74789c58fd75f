"""`resolve_model_files`: find a model's config, weights and chat template without loading weights."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chat_template import resolve_chat_template
from .default_model import DEFAULT_MODEL_GENERATION_CONFIG, default_model_path
from .enums import QuantizationEncoding
from .errors import ConfigError
from .gguf_metadata import read_gguf
from .hub import download_repo, looks_local
from .model import ModelConfig
from .quantization import check_requested, encoding_from_filename, safetensors_encoding

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length")


@dataclass(frozen=True)
class ModelFiles:
    """What the model's own files say. `config` uses HF `config.json` key names (built from the
    metadata for GGUF files); `encoding` is what the weights run as."""

    root: Path
    config: dict[str, Any]
    generation_config: dict[str, Any]
    weight_files: tuple[Path, ...]
    weight_format: str
    encoding: QuantizationEncoding
    chat_template: str | None
    architecture: str
    context_length: int
    file_encoding: QuantizationEncoding  # what the files hold; `encoding` may be a float cast of it

    @property
    def text_config(self) -> dict[str, Any]:
        """The language model's config (the nested `text_config` of multimodal models)."""
        return self.config.get("text_config") or self.config

    @property
    def num_layers(self) -> int:
        return int(self.text_config["num_hidden_layers"])

    @property
    def num_attention_heads(self) -> int:
        return int(self.text_config["num_attention_heads"])

    @property
    def num_kv_heads(self) -> int:
        return int(self.text_config.get("num_key_value_heads") or self.num_attention_heads)

    @property
    def head_dim(self) -> int:
        return int(self.text_config.get("head_dim") or self.text_config["hidden_size"] // self.num_attention_heads)

    @property
    def weights_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.weight_files)


def _read_json(path: Path, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise ConfigError(
                f"--model-path {path.parent}: no config.json; a model folder needs config.json and "
                "*.safetensors, or a GGUF file"
            )
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return content


def choose_weight_names(names: list[str], requested: QuantizationEncoding | None, where: str) -> list[str]:
    """The weight files to use among a folder's (or repo's) top-level file names."""
    safetensors = sorted(name for name in names if name.endswith(".safetensors") and "/" not in name)
    ggufs = sorted(name for name in names if name.endswith(".gguf") and "/" not in name)
    wants_gguf = requested is not None and requested.is_gguf_block
    if safetensors and not (wants_gguf and ggufs):
        plain = [name for name in safetensors if not name.startswith("consolidated")]
        return plain or safetensors
    if not ggufs:
        raise ConfigError(f"--model-path {where}: no *.safetensors or *.gguf weights found; pass --weight-path")
    if len(ggufs) == 1:
        return ggufs
    if requested is not None:
        matching = [name for name in ggufs if encoding_from_filename(name) == requested]
        if matching:
            return matching[:1]
        raise ConfigError(
            f"--quantization-encoding {requested.value}: no GGUF file in {where} has that encoding "
            f"(files: {', '.join(ggufs)})"
        )
    raise ConfigError(
        f"--model-path {where}: holds several GGUF files ({', '.join(ggufs)}); choose one with "
        "--quantization-encoding or --weight-path"
    )


def _folder_chat_template(root: Path) -> str | None:
    jinja = root / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        template = _read_json(root / name, required=False).get("chat_template")
        if isinstance(template, list):  # named templates: take the default one
            named = {item.get("name"): item.get("template") for item in template if isinstance(item, dict)}
            template = named.get("default")
        if isinstance(template, str):
            return template
    return None


def _locate(model: ModelConfig) -> tuple[Path, tuple[Path, ...]]:
    """(root folder, chosen weight files) of the model path: a file, a folder or a Hub repo."""
    if model.model_path is None:
        target = default_model_path()
    else:
        target = Path(model.model_path).expanduser()
    if target.is_file():
        if target.suffix != ".gguf":
            raise ConfigError(
                f"--model-path {target}: a model file must be a .gguf; for safetensors give the folder with config.json"
            )
        return target.parent, (target,)
    if target.is_dir():
        root = target / model.subfolder if model.subfolder else target
        if not root.is_dir():
            raise ConfigError(f"--subfolder {model.subfolder}: {root} is not a folder")
        if model.weight_path:
            return root, ()
        names = [path.name for path in root.iterdir() if path.is_file()]
        return root, tuple(root / name for name in choose_weight_names(names, model.quantization_encoding, str(root)))
    text = str(model.model_path)
    if looks_local(text):
        raise ConfigError(f"--model-path {text}: no such file or folder")
    return download_repo(text, model, lambda names: choose_weight_names(names, model.quantization_encoding, text))


def _weight_path_files(model: ModelConfig, root: Path) -> tuple[Path, ...]:
    files = []
    for text in model.weight_path:
        if "://" in text:
            raise ConfigError(f"--weight-path {text}: URLs are not supported; download the file and give its path")
        path = Path(text).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise ConfigError(f"--weight-path {text}: no such file ({path})")
        files.append(path)
    return tuple(files)


def _context_length(config: dict[str, Any], where: str) -> int:
    text = config.get("text_config") or config
    for key in _CONTEXT_KEYS:
        if isinstance(text.get(key), int) and text[key] > 0:
            return text[key]
    raise ConfigError(f"{where}: the model config gives no context length (max_position_embeddings); pass --max-length")


def resolve_model_files(model: ModelConfig, gguf_architectures: dict[str, str] | None = None) -> ModelFiles:
    """Resolve the model's files (local folder, GGUF file or Hub repo) and what they declare;
    `gguf_architectures` as in `read_gguf`."""
    root, weights = _locate(model)
    if model.weight_path:
        weights = _weight_path_files(model, root)
    suffixes = {path.suffix for path in weights}
    if suffixes == {".gguf"}:
        if len(weights) > 1:
            raise ConfigError("--weight-path: give one GGUF file (split GGUF files are not supported)")
        info = read_gguf(weights[0], gguf_architectures)
        config, generation_config, chat_template, detected = (
            info.config, info.generation_config, info.chat_template, info.encoding
        )
        # A generation_config.json beside the GGUF file (as in the model's HF repo) fills in the rest.
        generation_config = {**generation_config, **_read_json(root / "generation_config.json", required=False)}
        if model.model_path is None:
            generation_config = {**DEFAULT_MODEL_GENERATION_CONFIG, **generation_config}
        weight_format, where = "gguf", str(weights[0])
    elif suffixes == {".safetensors"}:
        config = _read_json(root / "config.json", required=True)
        generation_config = _read_json(root / "generation_config.json", required=False)
        chat_template = _folder_chat_template(root)
        detected = safetensors_encoding(weights, config)
        weight_format, where = "safetensors", str(root)
    else:
        raise ConfigError(f"--weight-path: weights must be all .safetensors or one .gguf, got {sorted(suffixes)}")
    if config.get("auto_map") and not model.trust_remote_code:
        raise ConfigError(f"--model-path {where}: the model ships custom code; pass --trust-remote-code to accept it")
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str):
        raise ConfigError(f"{root / 'config.json'}: no 'architectures' list naming the model class")
    if model.chat_template is not None:
        chat_template = resolve_chat_template(model.chat_template)
    return ModelFiles(
        root=root,
        config=config,
        generation_config=generation_config,
        weight_files=weights,
        weight_format=weight_format,
        encoding=check_requested(model.quantization_encoding, detected, where),
        chat_template=chat_template,
        architecture=architectures[0],
        context_length=_context_length(config, where),
        file_encoding=detected,
    )
