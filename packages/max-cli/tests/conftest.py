"""Run the `max` command in-process with click's CliRunner; a tiny random Llama to run it on."""

import pytest
from click.testing import CliRunner


@pytest.fixture
def invoke():
    from max_cli.main import cli

    def run(*args: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A folder with a one-layer random Llama (seed 0) and a byte-level tokenizer; copy it before changing it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny_llama")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=256, initializer_range=0.3, bos_token_id=0, eos_token_id=1,
    )
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    vocab = {"<s>": 0, "</s>": 1} | {c: i + 2 for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(path)
    return path
