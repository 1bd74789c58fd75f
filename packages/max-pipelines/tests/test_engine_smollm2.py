"""The real SmolLM2-135M-Instruct GGUF through LLM: greedy output equals HF transformers' from the same file."""

import torch
from fixtures.hf_gguf import hf_model_from_gguf
from transformers import AutoTokenizer

from max_config import SamplingParams, default_model_path
from max_pipelines import LLM

NEW = 8


def test_greedy_output_matches_transformers_on_the_same_gguf():
    gguf = default_model_path()
    llm = LLM(model=str(gguf), devices="cpu", max_length=256)
    out = llm.generate(["What is the capital of France?"], SamplingParams(temperature=0.0, max_new_tokens=NEW))[0]

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = hf_model_from_gguf(gguf)  # what from_pretrained(dir, gguf_file=...) builds
    ids = torch.tensor([out.prompt_token_ids])
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=False
    )
    assert out.prompt_token_ids == tok.encode(chat, add_special_tokens=False)
    with torch.inference_mode():
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False)
    ref_tokens = ref[0, ids.shape[1] :].tolist()
    eos = set(llm.eos_token_ids)
    if ref_tokens and ref_tokens[-1] in eos:
        assert out.stop_reason == "eos"
    assert out.token_ids == ref_tokens
    assert out.text == tok.decode(ref_tokens, skip_special_tokens=True)
    assert out.text.strip()
