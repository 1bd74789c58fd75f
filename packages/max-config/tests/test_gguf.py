"""GGUF metadata -> HF-style config, encodings from tensor types, checked against what the tests wrote."""

import gguf
import pytest

from max_config import ConfigError, ModelConfig, QuantizationEncoding, SamplingConfig, resolve_model_files
from max_config.gguf_metadata import GGUF_ARCHITECTURES, read_gguf


def test_llama_metadata_becomes_hf_keys(tmp_path, make_gguf):
    path = make_gguf(tmp_path / "tiny.gguf", context_length=512, hidden=64, layers=2, ffn=128, heads=4, kv_heads=2,
                     rope_scaling=("linear", 4.0, 128), tie_embeddings=False)
    info = read_gguf(path)
    config = info.config
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert (config["max_position_embeddings"], config["hidden_size"], config["num_hidden_layers"]) == (512, 64, 2)
    assert (config["intermediate_size"], config["num_attention_heads"], config["num_key_value_heads"]) == (128, 4, 2)
    assert config["head_dim"] == 16 and config["vocab_size"] == 96
    assert config["rms_norm_eps"] == 1e-6 and config["rope_theta"] == 500000.0
    assert config["rope_scaling"] == {"rope_type": "linear", "factor": 4.0, "original_max_position_embeddings": 128}
    assert config["rope_parameters"]["rope_theta"] == 500000.0
    assert config["tie_word_embeddings"] is False
    assert info.generation_config == {"bos_token_id": 1, "eos_token_id": 2}
    assert info.chat_template == "{{ messages[0]['content'] }}"
    assert info.encoding is QuantizationEncoding.q8_0


@pytest.mark.parametrize(
    ("qtype", "encoding"),
    [("Q4_0", "q4_0"), ("Q4_1", "q4_1"), ("Q8_0", "q8_0"), ("F16", "float16"), ("F32", "float32"),
     ("Q4_K", "q4_k"), ("Q6_K", "q6_k")],
)
def test_encoding_is_the_majority_type_of_2d_weights(tmp_path, make_gguf, qtype, encoding):
    hidden = 256 if qtype.endswith("_K") else 64  # K-quants pack 256 values a block
    path = make_gguf(tmp_path / "m.gguf", qtype=qtype, hidden=hidden, ffn=256, heads=4)
    assert read_gguf(path).encoding.value == encoding


def test_unsupported_tensor_type_is_a_clear_error(tmp_path, make_gguf):
    path = make_gguf(tmp_path / "m.gguf", qtype="IQ2_XXS", hidden=256, ffn=256)
    with pytest.raises(ConfigError, match="GGUF tensor type IQ2_XXS is not supported"):
        read_gguf(path)


@pytest.mark.parametrize("arch", sorted(GGUF_ARCHITECTURES))
def test_architecture_names(tmp_path, make_gguf, arch):
    assert read_gguf(make_gguf(tmp_path / "m.gguf", arch=arch)).config["architectures"] == [GGUF_ARCHITECTURES[arch][0]]
    assert GGUF_ARCHITECTURES["qwen2"][0] == "Qwen2ForCausalLM" and GGUF_ARCHITECTURES["gemma3"][0] == "Gemma3ForCausalLM"


def test_unknown_architecture_and_garbage_file(tmp_path, make_gguf):
    with pytest.raises(ConfigError, match="GGUF architecture 'mamba' is not supported"):
        read_gguf(make_gguf(tmp_path / "m.gguf", arch="mamba"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigError, match="not a readable GGUF file"):
        read_gguf(bad)


def test_resolve_a_gguf_file_and_check_requested_encoding(tmp_path, make_gguf):
    path = make_gguf(tmp_path / "model.gguf")
    files = resolve_model_files(ModelConfig(model_path=str(path)))
    assert files.weight_format == "gguf" and files.weight_files == (path,) and files.root == tmp_path
    assert files.architecture == "LlamaForCausalLM" and files.context_length == 512
    assert (files.num_layers, files.num_kv_heads, files.head_dim) == (2, 2, 16)
    with pytest.raises(ConfigError, match="--quantization-encoding q4_k: .* holds q8_0 weights"):
        resolve_model_files(ModelConfig(model_path=str(path), quantization_encoding="q4_k"))


def test_folder_of_several_ggufs_is_chosen_by_encoding(tmp_path, make_gguf):
    make_gguf(tmp_path / "m.Q8_0.gguf", qtype="Q8_0")
    make_gguf(tmp_path / "m.Q4_0.gguf", qtype="Q4_0")
    with pytest.raises(ConfigError, match="holds several GGUF files"):
        resolve_model_files(ModelConfig(model_path=str(tmp_path)))
    files = resolve_model_files(ModelConfig(model_path=str(tmp_path), quantization_encoding="q4_0"))
    assert files.weight_files == (tmp_path / "m.Q4_0.gguf",) and files.encoding.value == "q4_0"
    picked = resolve_model_files(ModelConfig(model_path=str(tmp_path), weight_path=["m.Q8_0.gguf"]))
    assert picked.encoding.value == "q8_0"
    with pytest.raises(ConfigError, match="no GGUF file .* has that encoding"):
        resolve_model_files(ModelConfig(model_path=str(tmp_path), quantization_encoding="q6_k"))


def test_the_embedded_smollm2_gguf(smollm2_path):
    files = resolve_model_files(ModelConfig())
    reader = gguf.GGUFReader(str(smollm2_path))
    assert files.weight_files == (smollm2_path,)
    assert files.architecture == "LlamaForCausalLM"
    assert files.num_layers == reader.fields["llama.block_count"].contents() == 30
    assert files.num_kv_heads == reader.fields["llama.attention.head_count_kv"].contents() == 3
    assert files.context_length == 8192 and files.head_dim == 64
    assert files.encoding is QuantizationEncoding.q4_1
    assert files.chat_template == reader.fields["tokenizer.chat_template"].contents()
    assert files.config["tie_word_embeddings"] is True


def test_header_reader_agrees_with_gguf_reader(tmp_path, make_gguf, smollm2_path):
    from max_config.gguf_header import ArrayLength, read_gguf_header

    for path in (make_gguf(tmp_path / "m.gguf", rope_scaling=("yarn", 2.0, 256)), smollm2_path):
        metadata, tensors = read_gguf_header(path)
        reader = gguf.GGUFReader(str(path))
        assert [(t.name, t.shape, t.type_name) for t in tensors] == [
            (t.name, tuple(int(d) for d in t.shape), t.tensor_type.name) for t in reader.tensors
        ]
        for name, field in reader.fields.items():
            if name.startswith("GGUF."):
                continue
            expected = field.contents()
            if isinstance(metadata[name], ArrayLength):
                assert metadata[name].length == len(expected)
            elif isinstance(expected, float):
                assert metadata[name] == pytest.approx(expected)
            else:
                assert metadata[name] == expected, name


def test_generation_config_beside_a_gguf_fills_request_defaults(tmp_path, make_gguf):
    path = make_gguf(tmp_path / "model.gguf")
    assert "temperature" not in resolve_model_files(ModelConfig(model_path=str(path))).generation_config
    (tmp_path / "generation_config.json").write_text('{"temperature": 0.6, "top_k": 20}')
    files = resolve_model_files(ModelConfig(model_path=str(path)))
    assert files.generation_config["temperature"] == 0.6 and files.generation_config["top_k"] == 20
    params = SamplingConfig().to_params(files.generation_config)
    assert (params.temperature, params.top_k) == (0.6, 20)


def test_the_embedded_model_samples_as_its_authors_recommend(smollm2_path):
    from max_config.default_model import DEFAULT_MODEL_GENERATION_CONFIG

    files = resolve_model_files(ModelConfig())
    params = SamplingConfig().to_params(files.generation_config)
    assert params.temperature == DEFAULT_MODEL_GENERATION_CONFIG["temperature"]
    assert params.top_p == DEFAULT_MODEL_GENERATION_CONFIG["top_p"]
    # Given explicitly, the same file carries no such defaults, and a user's flag still wins.
    assert "temperature" not in resolve_model_files(ModelConfig(model_path=str(smollm2_path))).generation_config
    assert SamplingConfig(temperature=0.0).to_params(files.generation_config).temperature == 0.0
