"""Tiny model folders and GGUF files written by the tests themselves."""

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest


def write_hf_folder(
    folder: Path,
    config: dict[str, Any],
    dtype: str = "float32",
    generation_config: dict[str, Any] | None = None,
    tokenizer_config: dict[str, Any] | None = None,
    shards: int = 1,
) -> Path:
    """config.json (+ generation_config.json, tokenizer_config.json) and tiny safetensors shards."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if generation_config is not None:
        (folder / "generation_config.json").write_text(json.dumps(generation_config))
    if tokenizer_config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    torch_dtype = getattr(torch, dtype)
    for shard in range(shards):
        tensors = {
            f"model.layers.{shard}.self_attn.q_proj.weight": torch.zeros(8, 8, dtype=torch_dtype),
            f"model.layers.{shard}.mlp.up_proj.weight": torch.zeros(16, 8, dtype=torch_dtype),
            f"model.layers.{shard}.input_layernorm.weight": torch.ones(8, dtype=torch.float32),
        }
        save_file(tensors, str(folder / f"model-{shard:05d}-of-{shards:05d}.safetensors"))
    return folder


def write_gguf(
    path: Path,
    arch: str = "llama",
    qtype: str = "Q8_0",
    *,
    context_length: int = 512,
    hidden: int = 64,
    layers: int = 2,
    ffn: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    chat_template: str | None = "{{ messages[0]['content'] }}",
    rope_scaling: tuple[str, float, int] | None = None,
    tie_embeddings: bool = True,
    vocab: int = 96,
) -> Path:
    """A GGUF file with real metadata and small weight tensors: 2-D weights in `qtype`, norms in F32."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(context_length)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(500000.0)
    writer.add_vocab_size(vocab)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if rope_scaling is not None:
        kind, factor, original = rope_scaling
        writer.add_rope_scaling_type(gguf.RopeScalingType(kind))
        writer.add_rope_scaling_factor(factor)
        writer.add_rope_scaling_orig_ctx_len(original)
    quant = gguf.GGMLQuantizationType[qtype]
    rng = np.random.default_rng(0)

    def add(name: str, shape: tuple[int, ...], kind: gguf.GGMLQuantizationType) -> None:
        values = rng.standard_normal(shape).astype(np.float32)
        if kind == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, values)
        elif kind.name in ("F16", "Q4_0", "Q4_1", "Q8_0"):
            writer.add_tensor(name, gguf.quants.quantize(values, kind), raw_dtype=kind)
        else:  # gguf cannot quantize K-quants: the bytes of the right size are enough for metadata tests
            block, type_size = gguf.GGML_QUANT_SIZES[kind]
            raw = np.zeros((shape[0], shape[1] // block * type_size), dtype=np.uint8)
            writer.add_tensor(name, raw, raw_dtype=kind)

    add("token_embd.weight", (vocab, hidden), quant)
    if not tie_embeddings:
        add("output.weight", (vocab, hidden), quant)
    for layer in range(layers):
        add(f"blk.{layer}.attn_norm.weight", (hidden,), gguf.GGMLQuantizationType.F32)
        add(f"blk.{layer}.attn_q.weight", (hidden, hidden), quant)
        add(f"blk.{layer}.ffn_up.weight", (ffn, hidden), quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def llama_config() -> dict[str, Any]:
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    ).to_dict()
    config["architectures"] = ["LlamaForCausalLM"]
    return config


@pytest.fixture
def smollm2_path() -> Path:
    from max_config import default_model_path

    return default_model_path()


@pytest.fixture
def make_gguf():
    return write_gguf


@pytest.fixture
def make_hf_folder():
    return write_hf_folder
