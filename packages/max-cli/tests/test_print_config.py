"""`max generate --print-config`: resolved values with their sources, on the real SmolLM2 GGUF."""

import re

import gguf
import pytest
import yaml

from max_config import default_model_path, generate_flags


def sources(text: str) -> dict[tuple[str, str], str]:
    """(section, key) -> the source comment of each line."""
    found, section = {}, ""
    for line in text.splitlines():
        if re.match(r"^\w+:", line):
            section = line.split(":")[0]
        match = re.match(r"^  (\w+): .*  # (.+)$", line)
        if match:
            found[(section, match.group(1))] = match.group(2)
    return found


def test_smollm2_print_config(invoke):
    result = invoke("generate", "--print-config", "--temperature", "0.5")
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    reader = gguf.GGUFReader(str(default_model_path()))
    resolved = printed["resolved"]
    assert resolved["architecture"] == "LlamaForCausalLM"
    assert resolved["num_layers"] == reader.fields["llama.block_count"].contents() == 30
    assert resolved["num_kv_heads"] == reader.fields["llama.attention.head_count_kv"].contents() == 3
    assert resolved["encoding"] == "q4_1" and resolved["weight_format"] == "gguf"
    assert resolved["context_length"] == 8192
    assert resolved["bytes_per_block"] == 2 * 30 * 3 * 64 * 128 * 4  # float32 KV on the CPU
    assert printed["model"]["model_path"] == str(default_model_path())
    assert printed["sampling"]["temperature"] == 0.5
    assert printed["request"]["temperature"] == 0.5 and printed["request"]["max_new_tokens"] == 100
    assert printed["generate"]["prompt"] == []
    found = sources(result.stdout)
    assert found[("sampling", "temperature")] == "flag"
    assert found[("request", "temperature")] == "flag"
    assert found[("request", "max_new_tokens")] == "default"
    assert found[("model", "quantization_encoding")] == "model files"
    assert found[("model", "max_length")] == "memory plan"
    assert found[("kv_cache", "kv_cache_page_size")] == "default"
    assert result.stderr == ""


def test_precedence_end_to_end(invoke, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("kv_cache:\n  kv_cache_page_size: 32\nruntime:\n  max_batch_input_tokens: 2048\n"
                      "sampling:\n  top_k: 11\n")
    env = {"MAX_KV_CACHE_PAGE_SIZE": "16", "MAX_MAX_BATCH_INPUT_TOKENS": "1024", "MAX_TOP_K": "5",
           "MAX_SEED": "9", "MAX_MAX_LENGTH": "1024"}
    result = invoke("generate", "--print-config", "--config-file", str(config), "--top-k", "3", env=env)
    assert result.exit_code == 0, result.output
    printed, found = yaml.safe_load(result.stdout), sources(result.stdout)
    assert printed["sampling"]["top_k"] == 3 and found[("sampling", "top_k")] == "flag"
    assert printed["kv_cache"]["kv_cache_page_size"] == 32
    assert found[("kv_cache", "kv_cache_page_size")] == f"config file {config}"
    assert printed["runtime"]["max_batch_input_tokens"] == 2048
    assert printed["sampling"]["seed"] == 9 and found[("sampling", "seed")] == "env MAX_SEED"
    assert printed["model"]["max_length"] == 1024 and found[("model", "max_length")] == "env MAX_MAX_LENGTH"
    assert printed["resolved"]["page_size"] == 32 and printed["resolved"]["max_length"] == 1024


def test_defer_resolve_skips_the_model_files(invoke):
    result = invoke("generate", "--print-config", "--defer-resolve", "--model", "some-org/some-model")
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert "resolved" not in printed and printed["model"]["model_path"] == "some-org/some-model"


# Flags whose sample value needs something else; the rest use a generic non-default value.
_SAMPLES = {"--kv-cache-page-size": "64", "--taylorseer-max-order": "2", "--max-length": "64", "--devices": "cpu",
            "--chat-template": "{{ x }}", "--draft-chat-template": "{{ x }}", "--model-override": "main.max_length=64",
            "--stop-token-ids": "1,2", "--models": '{"main": {"max_length": 64}}', "--draft-devices": "cpu"}
_SKIP = {"--config-file", "--section-name", "--print-config", "--help"}


def cli_sample(spec):
    if spec.name in _SAMPLES:
        return [spec.name, _SAMPLES[spec.name]]
    if spec.kind == "bool":
        return [spec.name if not spec.default else "--no-" + spec.name[2:]]
    if spec.kind == "bool_value":
        return [spec.name, "true"]
    if spec.kind == "choice":
        return [spec.name, next(choice for choice in spec.choices if choice != spec.default)]
    if spec.kind == "mapping":
        return [spec.name, '{"a": 1}']
    if spec.kind == "int":
        return [spec.name, "4" if spec.default == 3 else "3"]
    if spec.kind == "float":
        return [spec.name, "0.5"]
    return [spec.name, "abc"]


@pytest.mark.parametrize("spec", [s for s in generate_flags() if s.name not in _SKIP], ids=lambda s: s.name)
def test_each_flag_reaches_its_field_or_says_not_supported(invoke, spec, tmp_path):
    from max_config import NOT_SUPPORTED_YET

    args = cli_sample(spec)
    if spec.name == "--prompt-file":
        (tmp_path / "p.txt").write_text("one\ntwo\n")
        args = [spec.name, str(tmp_path / "p.txt")]
    companions = {"num_speculative_tokens": ["--speculative-method", "eagle"], "debug_verify_replay": ["--device-graph-capture"]}
    extra = companions.get(spec.key, [])
    result = invoke("generate", "--print-config", "--defer-resolve", *args, *extra)
    if spec.key in NOT_SUPPORTED_YET or spec.group == "draft" or spec.key == "num_speculative_tokens":
        assert result.exit_code == 2
        assert result.stderr.startswith("Error: not supported yet: ")
        return
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    section = {"pipeline": "pipeline", "generate": "generate"}.get(spec.group, spec.group)
    value = printed[section][spec.field]
    raw = args[-1]
    if spec.kind == "bool":
        assert value is (not spec.default)
    elif spec.kind in ("int", "float"):
        assert value == type(value)(raw) and not isinstance(value, str)
    elif spec.kind == "mapping":
        assert value == yaml.safe_load(raw)
    elif spec.kind == "int_list":
        assert value == [1, 2]
    elif spec.kind == "bool_value":
        assert value is True
    else:
        assert value == ([raw] if spec.multiple else raw)
    assert sources(result.stdout)[(section, spec.field)] == "flag"
