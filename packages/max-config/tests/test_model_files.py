"""Resolution of local HF folders: config, generation config, chat template, encodings, errors."""

import json
import os
import subprocess
import sys

import pytest

from max_config import ConfigError, ModelConfig, QuantizationEncoding, resolve_model_files
from max_config.quantization import encoding_from_filename, read_safetensors_header


def test_folder_with_config_and_safetensors(tmp_path, make_hf_folder, llama_config):
    folder = make_hf_folder(
        tmp_path / "m", llama_config, dtype="bfloat16", generation_config={"temperature": 0.6, "eos_token_id": 2},
        tokenizer_config={"chat_template": "{{ bos_token }}"}, shards=2,
    )
    files = resolve_model_files(ModelConfig(model_path=str(folder)))
    assert files.root == folder and files.weight_format == "safetensors"
    assert [path.name for path in files.weight_files] == ["model-00000-of-00002.safetensors",
                                                          "model-00001-of-00002.safetensors"]
    assert files.config == json.loads(json.dumps(llama_config))
    assert files.generation_config == {"temperature": 0.6, "eos_token_id": 2}
    assert files.chat_template == "{{ bos_token }}"
    assert files.encoding is QuantizationEncoding.bfloat16
    assert files.architecture == "LlamaForCausalLM" and files.context_length == 256
    assert (files.num_layers, files.num_kv_heads, files.head_dim) == (2, 2, 16)


def test_encoding_comes_from_the_safetensors_header(tmp_path, make_hf_folder, llama_config):
    folder = make_hf_folder(tmp_path / "m", llama_config, dtype="float32")
    header = read_safetensors_header(next(folder.glob("*.safetensors")))
    assert {entry["dtype"] for name, entry in header.items() if name != "__metadata__"} == {"F32"}
    assert resolve_model_files(ModelConfig(model_path=str(folder))).encoding is QuantizationEncoding.float32


def test_float_casts_are_allowed_other_encodings_are_not(tmp_path, make_hf_folder, llama_config):
    folder = make_hf_folder(tmp_path / "m", llama_config, dtype="float32")
    cast = resolve_model_files(ModelConfig(model_path=str(folder), quantization_encoding="bfloat16"))
    assert cast.encoding is QuantizationEncoding.bfloat16 and cast.file_encoding is QuantizationEncoding.float32
    with pytest.raises(ConfigError, match="--quantization-encoding q4_k: .* holds float32 weights"):
        resolve_model_files(ModelConfig(model_path=str(folder), quantization_encoding="q4_k"))


def test_declared_gptq_quant_method(tmp_path, make_hf_folder, llama_config):
    llama_config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    folder = make_hf_folder(tmp_path / "m", llama_config, dtype="float16")
    assert resolve_model_files(ModelConfig(model_path=str(folder))).encoding is QuantizationEncoding.gptq


def test_subfolder_weight_path_and_chat_template_files(tmp_path, make_hf_folder, llama_config):
    make_hf_folder(tmp_path / "repo" / "text", llama_config)
    (tmp_path / "repo" / "text" / "chat_template.jinja").write_text("{{ 'jinja file' }}")
    files = resolve_model_files(ModelConfig(model_path=str(tmp_path / "repo"), subfolder="text"))
    assert files.root == tmp_path / "repo" / "text" and files.chat_template == "{{ 'jinja file' }}"
    only = resolve_model_files(ModelConfig(model_path=str(tmp_path / "repo"), subfolder="text",
                                           weight_path=["model-00000-of-00001.safetensors"]))
    assert [path.name for path in only.weight_files] == ["model-00000-of-00001.safetensors"]
    template = tmp_path / "t.json"
    template.write_text(json.dumps({"chat_template": "{{ 'from json' }}"}))
    override = resolve_model_files(ModelConfig(model_path=str(tmp_path / "repo" / "text"), chat_template=str(template)))
    assert override.chat_template == "{{ 'from json' }}"


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        ("none", {"model_path": "./does/not/exist"}, "--model-path ./does/not/exist: no such file or folder"),
        ("empty", {}, "no \\*.safetensors or \\*.gguf weights found"),
        ("no_config", {}, "no config.json"),
        ("bad_json", {}, "config.json: not readable JSON"),
        ("custom_code", {}, "pass --trust-remote-code"),
        ("no_arch", {}, "no 'architectures' list"),
        ("folder", {"subfolder": "nope"}, "--subfolder nope: .* is not a folder"),
        ("folder", {"weight_path": ["missing.safetensors"]}, "--weight-path missing.safetensors: no such file"),
        ("folder", {"weight_path": ["https://x/y.safetensors"]}, "URLs are not supported"),
        ("txt_file", {}, "a model file must be a .gguf"),
    ],
)
def test_bad_model_folders(tmp_path, make_hf_folder, llama_config, setup, kwargs, message):
    folder = tmp_path / "m"
    folder.mkdir()
    if setup in ("no_config", "bad_json", "custom_code", "no_arch", "folder"):
        config = dict(llama_config)
        if setup == "custom_code":
            config["auto_map"] = {"AutoModel": "modeling.MyModel"}
        if setup == "no_arch":
            config.pop("architectures")
        make_hf_folder(folder, config)
        if setup == "no_config":
            (folder / "config.json").unlink()
        if setup == "bad_json":
            (folder / "config.json").write_text("{not json")
    if setup == "txt_file":
        kwargs = {"model_path": str(folder / "w.txt")}
        (folder / "w.txt").write_text("x")
    kwargs.setdefault("model_path", str(folder))
    with pytest.raises(ConfigError, match=message):
        resolve_model_files(ModelConfig(**kwargs))


def test_trust_remote_code_accepts_custom_code(tmp_path, make_hf_folder, llama_config):
    folder = make_hf_folder(tmp_path / "m", {**llama_config, "auto_map": {"AutoModel": "m.M"}})
    assert resolve_model_files(ModelConfig(model_path=str(folder), trust_remote_code=True)).architecture


def test_encoding_from_file_names():
    assert encoding_from_filename("model.Q4_K_M.gguf") is QuantizationEncoding.q4_k
    assert encoding_from_filename("SmolLM2-135M-Instruct.Q4_1.gguf") is QuantizationEncoding.q4_1
    assert encoding_from_filename("llama-bf16.gguf") is QuantizationEncoding.bfloat16
    assert encoding_from_filename("llama-f16.gguf") is QuantizationEncoding.float16
    assert encoding_from_filename("qwen-fp8.safetensors") is QuantizationEncoding.float8_e4m3fn
    assert encoding_from_filename("model.safetensors") is None


def test_uncached_hub_repo_is_one_clear_line(tmp_path):
    code = (
        "from max_config import ModelConfig, resolve_model_files\n"
        "resolve_model_files(ModelConfig(model_path='someone/not-a-cached-repo'))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0
    assert last.startswith("max_config.errors.ConfigError: --model-path someone/not-a-cached-repo: not a local path")
    assert "Hugging Face Hub failed" in last


def test_cached_hub_repo_resolves_offline(tmp_path, make_hf_folder, llama_config):
    commit = "0" * 40
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-llama"
    make_hf_folder(repo / "snapshots" / commit, llama_config, generation_config={"top_k": 20})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = (
        "from max_config import ModelConfig, resolve_model_files\n"
        "files = resolve_model_files(ModelConfig(model_path='someone/tiny-llama'))\n"
        "print(files.root.name, [p.name for p in files.weight_files], files.generation_config['top_k'])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.split() == [commit, "['model-00000-of-00001.safetensors']", "20"], result.stderr
