"""Older config.json spellings (transformers 4.x keys) and configs built from GGUF metadata."""

import dataclasses
import json

import torch
from fixtures.model_files import model_files
from fixtures.paged import PagedRunner
from fixtures.tiny_models import make_tiny_model

from max_pipelines.architectures import hf_config
from max_pipelines.layers.rotary import rope_parameters
from max_pipelines.weights.model_loader import load_model


def test_rope_parameters_from_old_and_new_keys():
    old = {"rope_theta": 1e6, "rope_scaling": {"type": "linear", "factor": 8.0}, "rope_local_base_freq": 1e4}
    assert rope_parameters(old) == {"rope_theta": 1e6, "type": "linear", "factor": 8.0, "rope_type": "linear"}
    assert rope_parameters(old, "sliding_attention") == {"rope_theta": 1e4, "rope_type": "default"}
    assert rope_parameters(old, "full_attention")["rope_theta"] == 1e6
    new = {"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3", "factor": 8.0}}
    assert rope_parameters(new)["rope_type"] == "llama3"
    assert rope_parameters({})["rope_theta"] == 10000.0


def test_layer_types_from_old_keys():
    assert hf_config.layer_types({"num_hidden_layers": 4, "sliding_window": 8, "sliding_window_pattern": 2}) == [
        "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    ]
    qwen = {"num_hidden_layers": 3, "sliding_window": 8, "use_sliding_window": True, "max_window_layers": 1}
    assert hf_config.layer_types(qwen) == ["full_attention", "sliding_attention", "sliding_attention"]
    assert hf_config.layer_types({**qwen, "use_sliding_window": False}) == ["full_attention"] * 3
    assert hf_config.layer_types({"num_hidden_layers": 2, "sliding_window": None}) == ["full_attention"] * 2


def test_gemma3_with_transformers_4_config_keys(tmp_path):
    """The tiny Gemma 3 described the 4.x way: rope_theta/rope_scaling/rope_local_base_freq and a
    sliding-window pattern instead of per-layer types."""
    hf_model = make_tiny_model("gemma3", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("layer_types", "rope_parameters"):
        config.pop(key)
    config.update(
        sliding_window_pattern=2,
        rope_theta=1e6,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
        rope_local_base_freq=1e4,
    )
    files = dataclasses.replace(model_files(tmp_path), config=config)
    model = load_model(files, "cpu", torch.float32)
    prompt = [9, 8, 30, 2, 77, 5, 14, 3, 101, 66]
    ours = PagedRunner(model, config, num_seqs=1).step([prompt])
    with torch.no_grad():
        ref = hf_model(torch.tensor([prompt])).logits[0]
    assert (ours - ref).abs().max() / ref.abs().max() < 1e-4
