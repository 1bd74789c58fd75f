"""GGUF loading: llama.cpp's q/k permutation undone, packed blocks kept packed, HF parity."""

import dataclasses

import gguf
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from fixtures.hf_gguf import hf_model_from_gguf
from fixtures.model_files import model_files
from fixtures.paged import PagedRunner
from fixtures.tiny_gguf import llama_cpp_permute, write_float_gguf, write_llama_gguf
from fixtures.tiny_models import make_tiny_model
from max_config import QuantizationEncoding, SamplingParams
from max_kernels.cpu import library

from max_pipelines import LLM
from max_pipelines.weights.gguf import GGUFSource, PackedTensor
from max_pipelines.weights.mapping import unpermute_llama_qk
from max_pipelines.weights.model_loader import load_model

Q = gguf.GGMLQuantizationType


def test_unpermute_inverts_the_converter_on_floats_and_packed_rows():
    w = torch.randn(4 * 16, 64)
    permuted = torch.from_numpy(llama_cpp_permute(w.numpy(), 4))
    assert not torch.equal(permuted, w)
    assert torch.equal(unpermute_llama_qk("blk.0.attn_q.weight", permuted, {"num_attention_heads": 4}), w)
    raw = torch.from_numpy(gguf.quants.quantize(w.numpy(), Q.Q8_0))
    raw_permuted = torch.from_numpy(gguf.quants.quantize(permuted.numpy(), Q.Q8_0))
    config = {"num_attention_heads": 8, "num_key_value_heads": 4}
    assert torch.equal(unpermute_llama_qk("blk.3.attn_k.weight", raw_permuted, config), raw)
    assert unpermute_llama_qk("blk.0.attn_v.weight", permuted, config) is permuted


@pytest.mark.parametrize(
    ("qtype", "tie", "overrides"),
    [
        (Q.Q8_0, False, {}),
        (Q.Q4_0, False, {}),
        (Q.Q4_1, True, {}),
        (Q.Q4_0, False, {"attn_v": Q.Q8_0, "ffn_up": Q.Q4_1}),
    ],
)
def test_tiny_llama_gguf_matches_transformers(qtype, tie, overrides, tmp_path):
    hf_float = make_tiny_model("llama", tmp_path / "hf")
    path = write_llama_gguf(hf_float, tmp_path / "tiny.gguf", qtype, tie=tie, overrides=overrides)
    hf_model = hf_model_from_gguf(path)
    files = model_files(path)
    assert files.encoding.value == qtype.name.lower()
    model = load_model(files, "cpu", torch.float32)

    layer = model.model.layers[0]
    assert layer.self_attn.qkv_proj.weight is None
    # Parts of one type are joined into one packed weight; mixed types stay separate.
    qkv_types = [qtype, overrides["attn_v"]] if overrides else [qtype]
    gate_up_types = [qtype, overrides["ffn_up"]] if overrides else [qtype]
    assert [q.qtype for q in layer.self_attn.qkv_proj.qweights] == qkv_types
    assert [q.qtype for q in layer.mlp.gate_up_proj.qweights] == gate_up_types
    assert model.model.embed_tokens.weight.dtype == torch.float32
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tie

    greedy_decode_matches(model, files.config, hf_model, steps=6)


def greedy_decode_matches(model, config: dict, hf_model, steps: int) -> None:
    """A prompt, then greedy decode steps through the paged cache: every step's logits within 1e-4 of
    transformers' full-sequence forward, and the same greedy token."""
    prompt = [5, 17, 99, 3, 42, 8, 64]
    runner = PagedRunner(model, config, num_seqs=1)
    logits = runner.step([prompt])
    tokens = list(prompt)
    for _ in range(steps):
        with torch.no_grad():
            ref = hf_model(torch.tensor([tokens])).logits[0, -1]
        ours = logits[-1]
        assert (ours - ref).abs().max() / ref.abs().max() < 1e-4
        assert int(ours.argmax()) == int(ref.argmax())
        tokens.append(int(ours.argmax()))
        logits = runner.step([[tokens[-1]]])


def test_float_encoding_dequantizes_packed_weights(tmp_path):
    hf_float = make_tiny_model("llama", tmp_path / "hf")
    path = write_llama_gguf(hf_float, tmp_path / "tiny.gguf", Q.Q8_0)
    files = model_files(path)
    packed = load_model(files, "cpu", torch.float32)
    floats = load_model(dataclasses.replace(files, encoding=QuantizationEncoding.float32), "cpu", torch.float32)
    proj = floats.model.layers[1].self_attn.qkv_proj
    assert proj.qweights == () and proj.weight.dtype == torch.float32
    x = torch.randn(3, 64)
    assert torch.allclose(proj(x), packed.model.layers[1].self_attn.qkv_proj(x), atol=1e-5)


def test_tensor_table_reader_agrees_with_gguf_py(tmp_path):
    path = tmp_path / "t.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "bé", "<s>", ""] * 50)
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_custom_alignment(64)
    w.add_tensor("f32", torch.randn(3, 5).numpy())
    w.add_tensor("f16", torch.randn(7).half().numpy())
    w.add_tensor("q", gguf.quants.quantize(torch.randn(4, 64).numpy(), Q.Q4_1), raw_dtype=Q.Q4_1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    ours = dict(GGUFSource(path))
    ref = gguf.GGUFReader(path)
    assert list(ours) == [t.name for t in ref.tensors]
    for t in ref.tensors:
        value = ours[t.name]
        data = value.data if isinstance(value, PackedTensor) else value
        assert data.numpy().tobytes() == t.data.tobytes()
    assert ours["q"].shape == (4, 64) and ours["q"].data.shape == (4, 40)
    assert ours["f32"].shape == (3, 5) and ours["f16"].dtype == torch.float16


@pytest.mark.parametrize("variant", ["gemma3", "mistral", "phi3", "qwen2", "qwen3"])
def test_llama_cpp_tensor_names_of_each_architecture(variant, tmp_path):
    """GGUF name mapping per family: a float GGUF written like llama.cpp's converter gives HF's logits."""
    hf_model = make_tiny_model(variant, tmp_path)
    path = write_float_gguf(hf_model, tmp_path / "model.gguf")
    files = dataclasses.replace(model_files(tmp_path), weight_files=(path,), weight_format="gguf")
    model = load_model(files, "cpu", torch.float32)
    prompt = [7, 3, 88, 41, 5, 120, 9, 64, 2]
    ours = PagedRunner(model, files.config, num_seqs=1).step([prompt])
    with torch.no_grad():
        ref = hf_model(torch.tensor([prompt])).logits[0]
    assert (ours - ref).abs().max() / ref.abs().max() < 1e-4


@pytest.mark.parametrize(
    ("qtype", "overrides"),
    [
        (Q.Q5_0, {}),
        (Q.Q5_1, {}),
        (Q.Q5_K, {"attn_v": Q.Q6_K, "ffn_down": Q.Q6_K}),  # as Q5_K_M files have them
        (Q.Q3_K, {"attn_v": Q.Q5_K, "ffn_down": Q.Q4_K}),  # as Q3_K_M files have them
        (Q.Q2_K, {"attn_v": Q.Q3_K, "ffn_down": Q.Q3_K}),
        (Q.IQ4_XS, {"attn_v": Q.IQ4_NL, "ffn_down": Q.Q6_K}),
    ],
)
def test_q5_k_quant_and_iq4_files_match_transformers(qtype, overrides, tmp_path):
    """The K-quants and IQ4 types as random blocks (gguf cannot quantize them): the reference reads the
    same file."""
    config = LlamaConfig(vocab_size=128, hidden_size=256, intermediate_size=256, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5)
    path = write_llama_gguf(LlamaForCausalLM(config), tmp_path / "tiny.gguf", qtype, overrides=overrides)
    files = model_files(path)
    assert files.encoding.value == qtype.name.lower()
    model = load_model(files, "cpu", torch.float32)
    qkv_types = [qtype, overrides["attn_v"]] if overrides else [qtype]
    assert [q.qtype.name for q in model.model.layers[0].self_attn.qkv_proj.qweights] == [t.name for t in qkv_types]
    greedy_decode_matches(model, files.config, hf_model_from_gguf(path), steps=3)


@pytest.mark.parametrize("qtype", [Q.Q5_0, Q.Q5_1])
def test_engine_generates_from_q5_files_like_transformers(qtype, tmp_path):
    """The engine's CPU paths (prefill: weights dequantized once to bfloat16; decode: the native step
    where a C compiler is present) on real quantized values."""
    hf_float = make_tiny_model("llama", tmp_path / "hf")
    path = write_llama_gguf(hf_float, tmp_path / f"tiny.{qtype.name}.gguf", qtype, tokenizer=True)
    llm = LLM(model=str(path), devices="cpu", max_length=64)
    assert (llm.runner.native is not None) == (library() is not None)
    prompts = [[5, 17, 42, 9, 100, 3, 77], [8, 8, 8, 120, 64, 31]]
    outs = llm.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True))
    hf = hf_model_from_gguf(path)
    for prompt, out in zip(prompts, outs):
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0)
        assert out.token_ids == ref[0, len(prompt):].tolist()
