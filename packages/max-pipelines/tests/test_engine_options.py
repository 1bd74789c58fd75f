"""Engine options on a tiny random Llama: kernel preferences from the flags, stop strings without detokenizing."""

import pytest
from fixtures.tiny_llm import make_llm, save_tiny

from max_config import SamplingParams
from max_kernels import kernel_preferences, set_kernel_preferences


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama_options")
    save_tiny(path, "llama")
    return path


@pytest.fixture
def restore_preferences():
    before = (kernel_preferences().experimental, kernel_preferences().vendor_blas)
    yield
    set_kernel_preferences(*before)


def test_kernel_flags_reach_the_kernel_preferences(tiny_path, restore_preferences):
    make_llm(tiny_path, use_vendor_blas=True, use_experimental_kernels=True)
    assert (kernel_preferences().experimental, kernel_preferences().vendor_blas) == (True, True)
    make_llm(tiny_path, use_vendor_blas=True)
    assert (kernel_preferences().experimental, kernel_preferences().vendor_blas) == (False, True)
    make_llm(tiny_path)
    assert (kernel_preferences().experimental, kernel_preferences().vendor_blas) == (False, False)


def first_stop(tokenizer, ids: list[int]) -> tuple[str, int]:
    """A one-character stop string that first appears when token n (> 2) is decoded, and n."""
    for n in range(3, len(ids)):
        before = tokenizer.decode(ids[: n - 1], skip_special_tokens=True)
        after = tokenizer.decode(ids[:n], skip_special_tokens=True)
        new = after[len(before):] if after.startswith(before) else ""
        for ch in new:
            if ch.isprintable() and ch != "\ufffd" and ch not in before:
                return ch, n
    raise AssertionError("no usable stop string in the generated text")


@pytest.mark.parametrize("detokenize", [True, False])
def test_stop_strings_stop_with_and_without_detokenize(tiny_path, detokenize):
    llm = make_llm(tiny_path)
    prompt = [5, 17, 42, 9, 100, 3, 77]
    free = llm.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=24, ignore_eos=True))[0].token_ids
    stop, n = first_stop(llm.tokenizer, free)
    params = SamplingParams(temperature=0.0, max_new_tokens=24, ignore_eos=True, stop=(stop,), detokenize=detokenize)
    out = llm.generate([prompt], params)[0]
    assert out.stop_reason == "stop_string"
    assert out.token_ids == free[:n]
    if detokenize:
        full = llm.tokenizer.decode(free[:n], skip_special_tokens=True)
        assert stop not in out.text and out.text == full.split(stop)[0]
    else:
        assert out.text == ""
        deltas = list(llm.stream(prompt, params))
        assert [t for d in deltas for t in d.token_ids] == free[:n]
        assert all(d.text == "" for d in deltas) and deltas[-1].stop_reason == "stop_string"
