"""Model identity, weights and model-level behaviour (`--model-path`, `--devices`, ...)."""

from typing import Any

from pydantic import BaseModel, ConfigDict

from .enums import QuantizationEncoding, RopeType
from .fields import setting


class ModelConfig(BaseModel):
    """One model of the pipeline: the main model, or the draft model (flags prefixed `--draft-`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    model_path: str | None = setting(
        None,
        "Accepts either a Hugging Face repository ID or a local path to the model (a folder, or a GGUF file).",
        default_text="the embedded SmolLM2-135M-Instruct GGUF",
        aliases=("--model",),
    )
    weight_path: list[str] = setting(
        help="Optional path of the model weights to use (relative to the model folder or absolute). Repeatable.",
        default_factory=list,
    )
    quantization_encoding: QuantizationEncoding | None = setting(
        None,
        "Weight encoding type. Auto-detected from the files when unset; if set, it must match an available "
        "encoding (float safetensors may also be cast to float32 or bfloat16). When the repository contains "
        "multiple quantization formats, set this to choose one.",
        default_text="detected from the weight files",
    )
    huggingface_model_revision: str = setting(
        "main", "Branch or Git revision of Hugging Face model repository to use."
    )
    huggingface_weight_revision: str = setting(
        "main", "Branch or Git revision of Hugging Face model repository to use for the weights."
    )
    trust_remote_code: bool = setting(False, "Whether or not to allow for custom modeling files on Hugging Face.")
    force_download: bool = setting(
        False, "Whether to force download a given file if it's already present in the local cache."
    )
    subfolder: str | None = setting(
        None,
        "Subdirectory within the HuggingFace repo to load config and weights from (for example, vae or "
        "text_encoder). When set, config.json and weights are resolved from {model_path}/{subfolder}/.",
    )
    devices: str | None = setting(
        None,
        "Whether to run the model on CPU (--devices=cpu), GPU (--devices=gpu) or a list of GPUs "
        "(--devices=gpu:0,1, or gpu:all). If not provided, the model will run on the first available GPU, "
        "or CPU if no GPUs are available.",
        default_text="first GPU, else cpu",
    )
    max_length: int | None = setting(
        None,
        "Maximum sequence length the model can process. If not specified, defaults to the model's "
        "max_position_embeddings, clamped to what fits in the KV cache memory.",
        default_text="the model's context length, clamped to memory",
        ge=1,
    )
    chat_template: str | None = setting(
        None,
        "Optional custom chat template to override the one shipped with the model: a file path (the raw "
        "template, or JSON with a chat_template key) or an inline Jinja template. If None, the model's "
        "default chat template is used.",
    )
    rope_type: RopeType | None = setting(
        None, "Force using a specific rope type. Only matters for GGUF weights.", default_text="from the model"
    )
    enable_echo: bool = setting(False, "Whether the model should be built with echo capabilities.")
    use_subgraphs: bool = setting(
        True,
        "Whether to use subgraphs for the model. This can significantly reduce compile time, especially for "
        "large models with identical blocks. This engine compiles no model graph (its kernels are Triton, "
        "decode steps are captured as device graphs), so the setting has no effect.",
    )
    data_parallel_degree: int = setting(
        1,
        "Data-parallelism parameter. The degree to which the model is replicated is dependent on the model type.",
        ge=1,
    )
    pool_embeddings: bool = setting(True, "Whether to pool embedding outputs.")
    vision_config_overrides: dict[str, Any] = setting(
        help="Model-specific vision configuration overrides, as inline JSON or a YAML/JSON file. For example, "
        'for InternVL: {"max_dynamic_patch": 24}.',
        default_factory=dict,
        parse="mapping",
    )
    served_model_name: str | None = setting(
        None, "Optional override for client-facing model name. Defaults to model_path."
    )


class DraftModelConfig(ModelConfig):
    """The draft model of speculative decoding; it also takes its own config file."""

    devices: str | None = setting(
        None,
        "Devices for the draft model in speculative decoding. If not provided, inherits from --devices. "
        "Accepts the same format as --devices.",
        default_text="inherits --devices",
    )
    config_file: str | None = setting(None, "A YAML or JSON file holding the draft model's settings.")
    section_name: str | None = setting(None, "The section of --draft-config-file to read.")
