"""Safetensors loading: shards, dtype casts, fused projections, clear errors."""

import dataclasses
import json

import pytest
import torch
from fixtures.model_files import model_files
from fixtures.paged import PagedRunner
from fixtures.tiny_models import make_tiny_model
from max_config import ConfigError
from safetensors.torch import load_file, save_file

from max_pipelines.weights.model_loader import load_model


def test_sharded_checkpoint_loads_like_hf_and_fuses_projections(tmp_path):
    hf = make_tiny_model("qwen2", tmp_path)
    hf.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    files = model_files(tmp_path)
    assert len(files.weight_files) > 2
    model = load_model(files, "cpu", torch.float32)

    attn = hf.model.layers[1].self_attn
    qkv = model.model.layers[1].self_attn.qkv_proj
    assert torch.equal(qkv.weight, torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
    assert torch.equal(qkv.bias, torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
    mlp = hf.model.layers[0].mlp
    gate_up = model.model.layers[0].mlp.gate_up_proj.weight
    assert torch.equal(gate_up, torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))


def test_bfloat16_cast_runs_close_to_float32(tmp_path):
    make_tiny_model("llama", tmp_path)
    files = model_files(tmp_path)
    f32 = load_model(files, "cpu", torch.float32)
    bf16 = load_model(dataclasses.replace(files, encoding="bfloat16"), "cpu")
    for name, p in bf16.named_parameters():
        assert p.dtype == (torch.float32 if "norm" in name else torch.bfloat16), name
    prompt = [[4, 9, 33, 7, 100, 12]]
    ref = PagedRunner(f32, files.config, 1).step(prompt)
    ours = PagedRunner(bf16, files.config, 1).step(prompt)
    assert ours.dtype == torch.float32
    assert (ours - ref).abs().max() / ref.abs().max() < 5e-2


def test_tied_checkpoint_shares_the_embedding(tmp_path):
    make_tiny_model("llama3_tied", tmp_path)
    model = load_model(model_files(tmp_path), "cpu", torch.float32)
    assert model.lm_head.weight is model.model.embed_tokens.weight


def _rewrite_weights(folder, edit):
    path = folder / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def test_unknown_tensor_is_named(tmp_path):
    make_tiny_model("llama", tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.update({"model.layers.0.mlp.extra.weight": torch.zeros(2)}))
    with pytest.raises(ConfigError, match=r"model\.layers\.0\.mlp\.extra\.weight"):
        load_model(model_files(tmp_path), "cpu", torch.float32)


def test_missing_tensor_is_named(tmp_path):
    make_tiny_model("llama", tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.pop("model.norm.weight"))
    with pytest.raises(ConfigError, match=r"no weights for \['model\.norm\.weight'\]"):
        load_model(model_files(tmp_path), "cpu", torch.float32)


def test_missing_fused_part_is_named(tmp_path):
    make_tiny_model("llama", tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
    with pytest.raises(ConfigError, match=r"model\.layers\.1\.self_attn\.qkv_proj\.weight"):
        load_model(model_files(tmp_path), "cpu", torch.float32)


def test_wrong_shape_is_named(tmp_path):
    make_tiny_model("llama", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    files = dataclasses.replace(model_files(tmp_path), config={**config, "intermediate_size": 80})
    with pytest.raises(ConfigError, match=r"down_proj\.weight. has shape \(64, 96\), expected \(64, 80\)"):
        load_model(files, "cpu", torch.float32)


def test_norm_weights_stay_float32_in_a_bfloat16_model(tmp_path):
    hf = make_tiny_model("gemma3", tmp_path).to(torch.bfloat16)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = load_model(model_files(tmp_path), "cpu", torch.bfloat16)
    assert model.model.layers[0].self_attn.qkv_proj.weight.dtype == torch.bfloat16
    norm = model.model.layers[1].post_feedforward_layernorm.weight
    assert norm.dtype == torch.float32
    assert torch.equal(norm, hf.model.layers[1].post_feedforward_layernorm.weight.float() + 1)


def test_norms_keep_a_bfloat16_copy_only_where_it_is_exact(tmp_path):
    """What the fused batch-1 products read for a norm (`kernel_weight`): bfloat16 when the checkpoint's
    values fit it exactly, else the float32 weight itself."""
    from max_pipelines.layers.norm import RMSNorm

    hf = make_tiny_model("llama", tmp_path / "f32")  # random float32 norm weights
    hf.to(torch.bfloat16).save_pretrained(tmp_path / "bf16", safe_serialization=True)
    for folder, want in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        model = load_model(model_files(tmp_path / folder), "cpu", torch.float32)
        norms = [m for m in model.modules() if isinstance(m, RMSNorm)]
        assert norms and all(m.kernel_weight.dtype == want for m in norms), folder
        assert all(torch.equal(m.kernel_weight.float(), m.weight) for m in norms)
