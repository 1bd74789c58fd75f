"""Decode steps through the native CPU library against HF transformers reading the same tiny GGUF."""

import dataclasses
import shutil

import gguf
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from fixtures.hf_gguf import hf_model_from_gguf
from fixtures.model_files import model_files
from fixtures.paged import PagedRunner
from fixtures.tiny_gguf import write_float_gguf, write_llama_gguf
from fixtures.tiny_llm import make_llm, save_tiny
from fixtures.tiny_models import make_tiny_model

from max_config import QuantizationEncoding, SamplingParams
from max_pipelines import LLM
from max_pipelines.engine.native_decode import native_decoder
from max_pipelines.engine.sampler import Sampler
from max_pipelines.weights.model_loader import load_model

Q = gguf.GGMLQuantizationType
needs_compiler = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")


@needs_compiler
@pytest.mark.parametrize(
    ("qtype", "tie", "overrides"),
    [(Q.Q8_0, False, {}), (Q.Q4_0, False, {}), (Q.Q4_1, True, {}), (Q.Q4_0, False, {"attn_v": Q.Q8_0, "ffn_up": Q.Q4_1})],
)
def test_native_decode_logits_match_transformers(qtype, tie, overrides, tmp_path, monkeypatch):
    """One token per step (the prompt too, as chunked prefill of one token), so every step is native.
    The last case mixes types inside the fused QKV and gate/up projections."""
    hf_float = make_tiny_model("llama", tmp_path / "hf")
    path = write_llama_gguf(hf_float, tmp_path / "tiny.gguf", qtype, tie=tie, overrides=overrides, tokenizer=True)
    llm = LLM(model=str(path), devices="cpu", max_length=128, max_batch_input_tokens=1)
    assert llm.runner.native is not None
    seen = []  # the logits each step samples from
    sample = Sampler.__call__
    monkeypatch.setattr(Sampler, "__call__", lambda self, logits, seqs, **kw: seen.append(logits.clone()) or sample(self, logits, seqs, **kw))
    prompt = [5, 17, 42, 9, 100, 3, 77]
    out = llm.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=5, ignore_eos=True))[0]
    assert len(seen) == 5
    hf = hf_model_from_gguf(path)
    for step, logits in enumerate(seen):
        with torch.inference_mode():
            want = hf(torch.tensor([prompt + out.token_ids[:step]])).logits[0, -1]
        assert (logits[0] - want).abs().max() / want.abs().max() < 1e-3


@needs_compiler
@pytest.mark.parametrize(
    ("variant", "qtype", "kv_dtype"),
    [
        ("qwen3", Q.Q8_0, torch.float32),
        ("mistral", Q.Q4_1, torch.float32),
        ("qwen2", Q.Q4_0, torch.bfloat16),
        ("phi3", Q.Q8_0, torch.float32),
        ("gemma3", Q.Q8_0, torch.float32),
    ],
)
def test_native_step_fits_other_families(variant, qtype, kv_dtype, tmp_path):
    """Qwen3's q/k norms, Mistral's sliding window (6 here), Qwen2's QKV bias, Phi-3's fused projections,
    Gemma 3's sandwich norms, GELU, two RoPE tables and soft-capped logits, a bfloat16 cache: two requests
    fed one token per step through the native step match the exact PyTorch model."""
    hf_model = make_tiny_model(variant, tmp_path)
    path = write_float_gguf(hf_model, tmp_path / "model.gguf", qtype)
    files = dataclasses.replace(
        model_files(tmp_path), weight_files=(path,), weight_format="gguf", encoding=QuantizationEncoding(qtype.name.lower())
    )
    model = load_model(files, "cpu", torch.float32)  # packed blocks, exact float32 matmuls over them
    torch_runner = PagedRunner(model, files.config, num_seqs=2, kv_dtype=kv_dtype)
    native_runner = PagedRunner(model, files.config, num_seqs=2, kv_dtype=kv_dtype)
    native_runner.native = native_decoder(model, native_runner.cache, max_len=64, max_batch=4)
    assert native_runner.native is not None
    prompts = [[7, 3, 88, 41, 5, 120, 9, 64, 2, 17, 33], [12, 90, 4, 4, 61]]
    for t in range(max(map(len, prompts))):
        step = [[p[t]] if t < len(p) else [] for p in prompts]
        want, got = torch_runner.step(step), native_runner.step(step)
        tol = 1e-3 if kv_dtype == torch.float32 else 5e-3  # bfloat16 keys may round the other way
        assert (got - want).abs().max() / want.abs().max() < tol, f"token {t}"


def test_models_the_library_does_not_fit_decode_in_pytorch(tmp_path):
    save_tiny(tmp_path / "float", "llama")  # float weights: the PyTorch path
    llm = make_llm(tmp_path / "float")
    assert llm.runner.native is None
    out = llm.generate([[5, 17, 42]], SamplingParams(temperature=0.0, max_new_tokens=3, ignore_eos=True))[0]
    assert len(out.token_ids) == 3


@needs_compiler
@pytest.mark.parametrize(
    ("qtype", "overrides"),
    [
        (Q.Q5_K, {"attn_v": Q.Q6_K, "ffn_down": Q.Q6_K}),  # as Q5_K_M files have them
        (Q.Q3_K, {"attn_v": Q.Q5_K, "ffn_down": Q.Q4_K}),  # as Q3_K_M files have them
        (Q.Q5_1, {"attn_v": Q.Q5_0}),
        (Q.IQ4_XS, {"attn_v": Q.IQ4_NL, "ffn_down": Q.Q6_K}),
        (Q.Q2_K, {"attn_v": Q.Q3_K, "ffn_down": Q.Q3_K}),
    ],
)
def test_native_step_reads_q5_low_k_quant_and_iq4_blocks(qtype, overrides, tmp_path):
    """Random K-quant and IQ4 blocks (gguf cannot quantize them) through the native step against the exact
    PyTorch model, one token per step for two requests."""
    config = LlamaConfig(vocab_size=128, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5)
    path = write_llama_gguf(LlamaForCausalLM(config), tmp_path / "model.gguf", qtype, overrides=overrides)
    files = model_files(path)
    model = load_model(files, "cpu", torch.float32)
    torch_runner = PagedRunner(model, files.config, num_seqs=2)
    native_runner = PagedRunner(model, files.config, num_seqs=2)
    native_runner.native = native_decoder(model, native_runner.cache, max_len=64, max_batch=4)
    assert native_runner.native is not None
    prompts = [[7, 3, 88, 41, 5, 120, 9], [12, 90, 4, 4, 61]]
    for t in range(max(map(len, prompts))):
        step = [[p[t]] if t < len(p) else [] for p in prompts]
        want, got = torch_runner.step(step), native_runner.step(step)
        assert (got - want).abs().max() / want.abs().max() < 1e-3, f"token {t}"
