"""The architecture registry: built-ins, unknown names, --custom-architectures modules."""

import dataclasses
import textwrap

import pytest
import torch
from fixtures.model_files import model_files
from fixtures.tiny_models import make_tiny_model
from max_config import ConfigError, load_custom_architectures

from max_pipelines.registry import REGISTRY, ArchitectureRegistry
from max_pipelines.weights.model_loader import load_model

BUILTIN = [
    "Gemma3ForCausalLM",
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Phi3ForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
]


def test_builtin_architectures():
    assert REGISTRY.names == BUILTIN


def test_unknown_architecture_lists_supported_and_the_flag(tmp_path):
    make_tiny_model("llama", tmp_path)
    files = dataclasses.replace(model_files(tmp_path), architecture="FalconForCausalLM")
    with pytest.raises(ConfigError) as e:
        load_model(files, "cpu", torch.float32)
    message = str(e.value)
    assert "FalconForCausalLM" in message and "--custom-architectures" in message
    assert all(name in message for name in BUILTIN)


def test_custom_architecture_module_is_registered(tmp_path):
    (tmp_path / "my_arch.py").write_text(
        textwrap.dedent(
            """
            from max_pipelines.architectures.llama.model import LlamaForCausalLM
            from max_pipelines.registry import SupportedArchitecture

            class MyForCausalLM(LlamaForCausalLM):
                pass

            ARCHITECTURES = [SupportedArchitecture("MyForCausalLM", MyForCausalLM)]
            """
        )
    )
    registry = ArchitectureRegistry()
    registry.register_custom(load_custom_architectures([f"{tmp_path}:my_arch"]))
    assert registry.get("MyForCausalLM").model_class.__name__ == "MyForCausalLM"


def test_custom_entries_must_be_supported_architectures(tmp_path):
    (tmp_path / "names_arch.py").write_text("ARCHITECTURES = ['LlamaForCausalLM']")
    with pytest.raises(ConfigError, match="not a max_pipelines.registry.SupportedArchitecture"):
        ArchitectureRegistry().register_custom(load_custom_architectures([f"{tmp_path}:names_arch"]))
