"""load_tokenizer for a safetensors folder, chat-template override, and the chat helper."""

import dataclasses

from fixtures.model_files import model_files
from fixtures.tiny_models import make_tiny_model
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from max_pipelines.tokenization import apply_chat_template, load_tokenizer

WORDS = ["<s>", "</s>", "<user>", "<bot>", "hello", "world", "\n"]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<user>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<bot>{% endif %}"
)


def save_tiny_tokenizer(folder):
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<s>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")
    tok.add_special_tokens({"additional_special_tokens": ["<user>", "<bot>"]})
    tok.save_pretrained(folder)


def test_folder_tokenizer_and_template_override(tmp_path):
    make_tiny_model("llama", tmp_path)
    save_tiny_tokenizer(tmp_path)
    files = model_files(tmp_path)
    tok = load_tokenizer(files)
    assert tok.encode("hello world", add_special_tokens=False) == [4, 5]
    assert not tok.chat_template
    assert apply_chat_template(tok, "hello world") == tok.encode("hello world")

    tok = load_tokenizer(dataclasses.replace(files, chat_template=TEMPLATE))
    assert tok.chat_template == TEMPLATE
    assert apply_chat_template(tok, "hello world") == [0, 2, 4, 5, 3]
