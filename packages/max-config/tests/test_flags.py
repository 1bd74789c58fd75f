"""The flag table covers the spec, and every flag lands in the right field with the right type."""

import json
from enum import Enum
from pathlib import Path

import pytest

from max_config import generate_flags
from max_config.flags import value_of
from max_config.generate import build_generate_config
from max_config.pipeline import GROUPS
from max_config.sources import gather

FLAGS = generate_flags()
SPEC_FLAGS = (Path(__file__).parent / "spec_flags.txt").read_text().split()

# Values that must satisfy a field's own constraints; other ints use 3, floats 0.5.
_INT_SAMPLES = {"kv_cache_page_size": 64, "taylorseer_max_order": 2, "max_length": 64}
_STR_SAMPLES = {
    "devices": "cpu",
    "chat_template": "{{ messages }}",
    "draft_chat_template": "{{ messages }}",
    "model_override": "main.max_length=64",
    "draft_devices": "cpu",
}
# Settings a flag needs alongside it to be valid.
_COMPANIONS = {"num_speculative_tokens": {"speculative_method": "eagle"}, "debug_verify_replay": {"device_graph_capture": "1"}}
_SKIP = {"config_file", "section_name"}  # need a real file; covered in test_sources.py


def sample(spec):
    """(environment string, expected field value) for a non-default value of `spec`."""
    if spec.multiple:
        raw, value = _scalar_sample(spec)
        return json.dumps([value]), [value]
    return _scalar_sample(spec)


def _scalar_sample(spec):
    if spec.kind == "bool":
        value = not spec.default if spec.default is not None else True
        return ("true" if value else "false"), value
    if spec.kind == "bool_value":
        return "true", True
    if spec.kind == "choice":
        choice = next(c for c in spec.choices if c != spec.default)
        return choice.upper(), choice
    if spec.kind == "mapping":
        mapping = {"main": {"max_length": 64}} if spec.key == "models" else {"a": 1}
        return json.dumps(mapping), mapping
    if spec.kind == "int_list":
        return "1, 2", [1, 2]
    if spec.kind == "int":
        value = _INT_SAMPLES.get(spec.key, 3 if spec.default != 3 else 4)
        return str(value), value
    if spec.kind == "float":
        return "0.5", 0.5
    text = _STR_SAMPLES.get(spec.key, "abc")
    return text, text


def test_every_spec_flag_is_in_the_table():
    names = {spec.name for spec in FLAGS} | {alias for spec in FLAGS for alias in spec.aliases}
    assert len(SPEC_FLAGS) == 118
    assert [flag for flag in SPEC_FLAGS if flag not in names] == []


def test_flag_names_and_keys_are_unique():
    keys = [spec.key for spec in FLAGS]
    names = [spec.name for spec in FLAGS] + [alias for spec in FLAGS for alias in spec.aliases]
    assert len(keys) == len(set(keys))
    assert len(names) == len(set(names))


def test_groups_do_not_share_field_names():
    seen: dict[str, str] = {}
    for group, model in GROUPS.items():
        for name in model.model_fields:
            assert name not in seen, f"{name} in {group} and {seen.get(name)}"
            seen[name] = group


def test_every_flag_has_help_and_a_default_text():
    missing = [spec.name for spec in FLAGS if not spec.help or not spec.default_text]
    assert missing == []


@pytest.mark.parametrize("spec", [s for s in FLAGS if s.key not in _SKIP], ids=lambda s: s.name)
def test_flag_value_from_environment_reaches_its_field(spec):
    raw, expected = sample(spec)
    environ = {spec.env_var: raw}
    for key, value in _COMPANIONS.get(spec.key, {}).items():
        environ["MAX_" + key.upper()] = value
    settings = gather({}, environ=environ, flags=FLAGS)
    config, options = build_generate_config(settings.values)
    got = value_of(spec, config, options)
    assert got == expected
    assert settings.sources[spec.key] == f"env {spec.env_var}"


def test_defaults_match_the_models():
    config, options = build_generate_config({})
    for spec in FLAGS:
        if spec.group == "draft":
            assert config.draft is None
            continue
        value = value_of(spec, config, options)
        assert (value.value if isinstance(value, Enum) else value) == spec.default, spec.name
