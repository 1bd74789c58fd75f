"""The real SmolLM2-135M-Instruct GGUF through LLM: greedy output equals HF transformers' from the same file.

On the CPU its decode steps run through the native library (max_kernels.cpu) where that builds."""

import shutil

import torch
from fixtures.hf_gguf import hf_model_from_gguf

from max_config import SamplingParams, default_model_path
from max_pipelines import LLM

NEW = 32
PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "Explain gravity to a child."]


def test_greedy_output_matches_transformers_on_the_same_gguf():
    gguf = default_model_path()
    llm = LLM(model=str(gguf), devices="cpu", max_length=256)
    if shutil.which("cc") or shutil.which("gcc"):
        assert llm.runner.native is not None
    # All prompts at once: decode steps of 3, then 2, then 1 request as they finish.
    outs = llm.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=NEW))
    # The chat template wraps the prompt as one user turn, ready for the assistant's answer.
    prompt_text = llm.tokenizer.decode(outs[0].prompt_token_ids)
    assert prompt_text.rstrip().endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant")

    model = hf_model_from_gguf(gguf)  # what from_pretrained(dir, gguf_file=...) builds
    for out in outs:
        ids = torch.tensor([out.prompt_token_ids])
        with torch.inference_mode():
            ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False)
        ref_tokens = ref[0, ids.shape[1] :].tolist()
        if ref_tokens[-1] in llm.eos_token_ids:
            assert out.stop_reason == "eos"
        assert out.token_ids == ref_tokens
    assert "Paris" in outs[0].text
