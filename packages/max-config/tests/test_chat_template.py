"""--chat-template: a file (raw or JSON) or an inline template, compiled with jinja2."""

import json

import jinja2
import pytest

from max_config import ConfigError
from max_config.chat_template import resolve_chat_template

TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"


def render(template):
    return jinja2.Template(template).render(messages=[{"role": "user", "content": "hi"}])


def test_raw_file_json_file_and_inline(tmp_path):
    raw = tmp_path / "t.jinja"
    raw.write_text(TEMPLATE)
    as_json = tmp_path / "t.json"
    as_json.write_text(json.dumps({"chat_template": TEMPLATE}))
    for value in (str(raw), str(as_json), TEMPLATE):
        assert render(resolve_chat_template(value)) == "<user>hi"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("templates/missing.jinja", "is neither a readable file nor an inline Jinja template"),
        ("{% for x in %}", "not a valid Jinja template"),
        ("{{ unclosed", "not a valid Jinja template"),
    ],
)
def test_bad_values(value, message):
    with pytest.raises(ConfigError, match=message):
        resolve_chat_template(value)


def test_bad_files(tmp_path):
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% if %}")
    with pytest.raises(ConfigError, match=f"--chat-template {broken}: not a valid Jinja template"):
        resolve_chat_template(str(broken))
    no_key = tmp_path / "nokey.json"
    no_key.write_text(json.dumps({"template": "x"}))
    with pytest.raises(ConfigError, match="JSON without a string 'chat_template' key"):
        resolve_chat_template(str(no_key))
    binary = tmp_path / "bin.jinja"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_chat_template(str(binary))
