"""`--custom-architectures`: a module from a folder registers a new architecture name end to end."""

import json
import shutil
import textwrap

import pytest

MODULE = """
from max_pipelines.architectures.llama import ARCHITECTURES as LLAMA
from max_pipelines.registry import SupportedArchitecture

_base = next(a for a in LLAMA if a.name == "LlamaForCausalLM")
ARCHITECTURES = [
    SupportedArchitecture(
        name="MyLlamaForCausalLM",
        model_class=_base.model_class,
        weight_map=_base.weight_map,
        gguf_weight_map=_base.gguf_weight_map,
    )
]
"""


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_llama):
    """The same random weights twice: once as LlamaForCausalLM, once as MyLlamaForCausalLM."""
    root = tmp_path_factory.mktemp("custom_arch")
    shutil.copytree(tiny_llama, root / "llama")
    shutil.copytree(root / "llama", root / "mine")
    cfg_path = root / "mine" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["architectures"] = ["MyLlamaForCausalLM"]
    cfg_path.write_text(json.dumps(cfg))
    (root / "my_arch_e2e.py").write_text(textwrap.dedent(MODULE))
    return root


def generate(invoke, model, *extra):
    return invoke("generate", "--model", str(model), "--devices", "cpu", "--max-length", "64", "--prompt", "Hello",
                  "--temperature", "0", "--max-new-tokens", "8", "--ignore-eos", "--no-detokenize", *extra)


def test_custom_architecture_generates_the_builtin_tokens(invoke, models_dir):
    reference = generate(invoke, models_dir / "llama")
    assert reference.exit_code == 0, reference.output
    custom = generate(invoke, models_dir / "mine", "--custom-architectures", f"{models_dir}:my_arch_e2e")
    assert custom.exit_code == 0, custom.output
    ids = custom.stdout.split()
    assert len(ids) == 8 and all(i.isdigit() for i in ids)
    assert custom.stdout == reference.stdout


def test_custom_architecture_is_listed_by_print_config(invoke, models_dir):
    result = invoke("generate", "--model", str(models_dir / "mine"), "--devices", "cpu", "--max-length", "64",
                    "--custom-architectures", f"{models_dir}:my_arch_e2e", "--print-config")
    assert result.exit_code == 0, result.output
    assert "MyLlamaForCausalLM" in result.stdout


def test_without_the_flag_the_error_names_it_and_the_supported_architectures(invoke, models_dir):
    result = generate(invoke, models_dir / "mine")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if "MyLlamaForCausalLM" in line]
    assert len(errors) == 1
    assert "--custom-architectures" in errors[0] and "LlamaForCausalLM, " in errors[0]
    assert result.stdout == ""
