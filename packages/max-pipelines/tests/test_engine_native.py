"""Decode steps through the native CPU library against HF transformers reading the same tiny GGUF."""

import shutil

import gguf
import pytest
import torch
from fixtures.hf_gguf import hf_model_from_gguf
from fixtures.tiny_gguf import write_llama_gguf
from fixtures.tiny_llm import make_llm, save_tiny
from fixtures.tiny_models import make_tiny_model

from max_config import SamplingParams
from max_pipelines import LLM
from max_pipelines.engine.sampler import Sampler

Q = gguf.GGMLQuantizationType
needs_compiler = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")


@needs_compiler
@pytest.mark.parametrize(("qtype", "tie"), [(Q.Q8_0, False), (Q.Q4_0, False), (Q.Q4_1, True)])
def test_native_decode_logits_match_transformers(qtype, tie, tmp_path, monkeypatch):
    """One token per step (the prompt too, as chunked prefill of one token), so every step is native."""
    path = write_llama_gguf(make_tiny_model("llama", tmp_path / "hf"), tmp_path / "tiny.gguf", qtype, tie=tie, tokenizer=True)
    llm = LLM(model=str(path), devices="cpu", max_length=128, max_batch_input_tokens=1)
    assert llm.runner.native is not None
    seen = []  # the logits each step samples from
    sample = Sampler.__call__
    monkeypatch.setattr(Sampler, "__call__", lambda self, logits, seqs: seen.append(logits.clone()) or sample(self, logits, seqs))
    prompt = [5, 17, 42, 9, 100, 3, 77]
    out = llm.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=5, ignore_eos=True))[0]
    assert len(seen) == 5
    hf = hf_model_from_gguf(path)
    for step, logits in enumerate(seen):
        with torch.inference_mode():
            want = hf(torch.tensor([prompt + out.token_ids[:step]])).logits[0, -1]
        assert (logits[0] - want).abs().max() / want.abs().max() < 1e-3


def test_models_the_library_does_not_fit_decode_in_pytorch(tmp_path):
    mixed = write_llama_gguf(
        make_tiny_model("llama", tmp_path / "hf"), tmp_path / "mixed.gguf", Q.Q4_0, overrides={"attn_v": Q.Q8_0}, tokenizer=True
    )
    save_tiny(tmp_path / "float", "llama")
    for llm in (LLM(model=str(mixed), devices="cpu", max_length=64), make_llm(tmp_path / "float")):
        assert llm.runner.native is None
        out = llm.generate([[5, 17, 42]], SamplingParams(temperature=0.0, max_new_tokens=3, ignore_eos=True))[0]
        assert len(out.token_ids) == 3
