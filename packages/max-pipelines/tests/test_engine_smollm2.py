"""The real SmolLM2-135M-Instruct GGUF through LLM: greedy output equals HF transformers' from the same file.

On the CPU its decode steps run through the native library (max_kernels.cpu) where that builds. The
file ships Q4_1 weights; a copy requantized to Q5_1 checks the 5-bit blocks on real weights."""

import shutil

import gguf
import pytest
import torch
from fixtures.hf_gguf import hf_model_from_gguf
from fixtures.tiny_gguf import requantize_gguf

from max_config import SamplingParams, default_model_path
from max_pipelines import LLM

NEW = 32
PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "Explain gravity to a child."]


@pytest.mark.parametrize("qtype", ["Q4_1", "Q5_1"])
def test_greedy_output_matches_transformers_on_the_same_gguf(qtype, tmp_path):
    path = default_model_path()
    if qtype != "Q4_1":
        path = requantize_gguf(path, tmp_path / f"SmolLM2-135M-Instruct.{qtype}.gguf", gguf.GGMLQuantizationType[qtype])
    llm = LLM(model=str(path), devices="cpu", max_length=256)
    if shutil.which("cc") or shutil.which("gcc"):
        assert llm.runner.native is not None
    # All prompts at once: decode steps of 3, then 2, then 1 request as they finish.
    outs = llm.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=NEW))
    # The chat template wraps the prompt as one user turn, ready for the assistant's answer.
    prompt_text = llm.tokenizer.decode(outs[0].prompt_token_ids)
    assert prompt_text.rstrip().endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant")

    model = hf_model_from_gguf(path)  # what from_pretrained(dir, gguf_file=...) builds
    for out in outs:
        ids = torch.tensor([out.prompt_token_ids])
        with torch.inference_mode():
            ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False)
        ref_tokens = ref[0, ids.shape[1] :].tolist()
        if out.token_ids != ref_tokens:
            assert_near_tie(model, out.prompt_token_ids, ref_tokens, out.token_ids)
            continue
        if ref_tokens[-1] in llm.eos_token_ids:
            assert out.stop_reason == "eos"
    if qtype == "Q4_1":  # the shipped weights (quantizing them twice changes the answer, for both engines)
        assert "Paris" in outs[0].text


def assert_near_tie(model, prompt: list[int], ref: list[int], ours: list[int]) -> None:
    """Greedy runs may part only where transformers' own logits nearly tie (within 0.1% of the top
    logit) between its token and ours; after that the texts go their own ways."""
    i = next(k for k, (a, b) in enumerate(zip(ref, ours)) if a != b)
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + ref[:i]])).logits[0, -1]
    assert logits.max() - logits[ours[i]] <= 1e-3 * logits.max().abs(), f"token {i}: not a near tie"
