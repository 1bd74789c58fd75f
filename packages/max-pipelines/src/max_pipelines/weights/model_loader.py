"""`load_model`: resolved model files -> a ready model on the device."""

from __future__ import annotations

import torch
from max_config import ConfigError, QuantizationEncoding
from torch import nn

from max_pipelines.registry import REGISTRY
from max_pipelines.weights.gguf import GGUFSource
from max_pipelines.weights.loader import WeightLoader
from max_pipelines.weights.safetensors import SafetensorsSource

_FLOAT_ENCODINGS = {
    QuantizationEncoding.float32: torch.float32,
    QuantizationEncoding.bfloat16: torch.bfloat16,
    QuantizationEncoding.float16: torch.float16,
}


def default_dtype(encoding: QuantizationEncoding | str, device: torch.device) -> torch.dtype:
    """Activation dtype: the float encoding itself, else bfloat16 on GPU and float32 on CPU."""
    encoding = QuantizationEncoding(encoding)
    if encoding in _FLOAT_ENCODINGS:
        return _FLOAT_ENCODINGS[encoding]
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def load_model(
    model_files,
    device: torch.device | str,
    dtype: torch.dtype | None = None,
    custom_architectures: list | tuple = (),
    cpu_path: str | None = None,
) -> nn.Module:
    """Build `model_files.architecture` on the meta device and assign its weights on `device`.

    `model_files` is a `max_config.ModelFiles` (uses `config`, `weight_files`, `weight_format`,
    `encoding`, `architecture`, `context_length`). Float weights are cast to `dtype`. GGUF
    quantized weights stay packed when `encoding` is a GGUF block encoding; with a float
    encoding they are dequantized to `dtype` at load. Tied embeddings share one table.

    `cpu_path` picks how packed weights run on the CPU (see `max_kernels.gguf.QuantizedWeight`);
    None means exact: float32 for a float32 model. "auto" takes the fastest path: 4-bit weights
    stay packed and matmul in bfloat16, and a tied LM head over a quantized table keeps a
    bfloat16 copy of it (logits within ~1e-2 of the output scale; the 16 largest per row exact).

    `custom_architectures` (from `ResolvedPipeline.custom_architectures`) are looked up first.
    """
    device = torch.device(device)
    arch = REGISTRY.with_custom(custom_architectures).get(model_files.architecture)
    dtype = dtype or default_dtype(model_files.encoding, device)
    config = model_files.config
    # The RoPE table covers the model's own limit and any longer context the config allows.
    max_positions = max(model_files.context_length or 0, config.get("max_position_embeddings") or 4096)
    with torch.device("meta"):
        model = arch.model_class(config, max_positions)

    files = ", ".join(str(f) for f in model_files.weight_files)
    if model_files.weight_format == "gguf":
        if arch.gguf_weight_map is None:
            raise ConfigError(f"{files}: {arch.name} cannot be loaded from GGUF files; use safetensors weights")
        weight_map = arch.gguf_weight_map
        sources = [GGUFSource(f) for f in model_files.weight_files]
    else:
        weight_map = arch.weight_map
        sources = [SafetensorsSource(model_files.weight_files)]
    tied = bool(config.get("tie_word_embeddings", False))
    keep_packed = QuantizationEncoding(model_files.encoding).is_gguf_block
    loader = WeightLoader(model, weight_map, config, device, dtype, keep_packed, cpu_path)
    try:
        for source in sources:
            loader.load(source, len(source), skip={"lm_head.weight"} if tied else set())
    except ValueError as e:
        raise ConfigError(f"{files}: {e} (the weights do not fit {arch.name} with this config)") from e
    if tied or "lm_head.weight" not in loader.loaded:
        model.tie_weights()
        loader.loaded.add("lm_head.weight")
        if loader.cpu_path == "auto" and keep_packed and device.type == "cpu" and dtype == torch.float32:
            model.lm_head.use_low_precision(torch.bfloat16)

    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ConfigError(f"{files}: no weights for {missing[:4]} ({len(missing)} missing)")
    for module in model.modules():
        if hasattr(module, "init_buffers"):
            module.init_buffers(device)
    return model.eval()
