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


def test_custom_architecture_claims_a_gguf_architecture(tmp_path):
    """A GGUF file of an architecture name the engine does not know loads once a custom entry claims it."""
    import gguf
    from fixtures.tiny_gguf import write_llama_gguf
    from fixtures.tiny_llm import byte_tokenizer
    from fixtures.tiny_models import make_tiny_model

    from max_config import SamplingParams
    from max_pipelines import LLM

    hf = make_tiny_model("llama", tmp_path / "hf")
    q8 = gguf.GGMLQuantizationType.Q8_0
    plain = write_llama_gguf(hf, tmp_path / "plain.gguf", q8, tokenizer=True)
    renamed = write_llama_gguf(hf, tmp_path / "renamed.gguf", q8, tokenizer=True, arch="tinyllama")
    (tmp_path / "tiny_arch.py").write_text(
        textwrap.dedent(
            """
            from max_pipelines.architectures.llama import LLAMA_GGUF_WEIGHT_MAP
            from max_pipelines.architectures.llama.model import LlamaForCausalLM
            from max_pipelines.registry import SupportedArchitecture

            class TinyLlamaForCausalLM(LlamaForCausalLM):
                pass

            ARCHITECTURES = [
                SupportedArchitecture(
                    "TinyLlamaForCausalLM",
                    TinyLlamaForCausalLM,
                    gguf_weight_map=LLAMA_GGUF_WEIGHT_MAP,  # q/k rows as llama.cpp's converter permutes them
                    gguf_architectures=("tinyllama",),
                )
            ]
            """
        )
    )
    with pytest.raises(ConfigError, match="GGUF architecture 'tinyllama' is not supported .*gguf_architectures"):
        LLM(model=str(renamed), devices="cpu", max_length=64)
    arch = [f"{tmp_path}:tiny_arch"]
    # transformers builds GGUF tokenizers only for architectures it knows: the files beside it are read
    with pytest.raises(ConfigError, match=r"renamed.gguf: no tokenizer can be built .* put the model's tokenizer files"):
        LLM(model=str(renamed), devices="cpu", max_length=64, custom_architectures=arch)
    byte_tokenizer().save_pretrained(tmp_path)
    params = SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True)
    custom = LLM(model=str(renamed), devices="cpu", max_length=64, custom_architectures=arch)
    assert type(custom.runner.model).__name__ == "TinyLlamaForCausalLM"
    want = LLM(model=str(plain), devices="cpu", max_length=64).generate([[5, 9, 77, 31]], params)[0].token_ids
    assert custom.generate([[5, 9, 77, 31]], params)[0].token_ids == want
