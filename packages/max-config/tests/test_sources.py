"""Precedence: --model-override > flags (> --models) > config file > environment > defaults."""

import json

import pytest

from max_config import ConfigError, PipelineConfig, generate_flags
from max_config.sources import describe_error, gather

FLAGS = generate_flags()


def config_of(settings):
    return PipelineConfig.from_flat(**settings.values)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_each_layer_wins_over_the_ones_below(tmp_path):
    file = write(tmp_path, "c.yaml", "kv_cache_page_size: 32\nmax_batch_input_tokens: 300\nmax_length: 70\n")
    environ = {"MAX_KV_CACHE_PAGE_SIZE": "16", "MAX_MAX_BATCH_INPUT_TOKENS": "200", "MAX_TOP_K": "7"}
    settings = gather({"config_file": file, "kv_cache_page_size": 64}, environ=environ, flags=FLAGS)
    config = config_of(settings)
    assert config.kv_cache.kv_cache_page_size == 64  # flag over file and env
    assert config.runtime.max_batch_input_tokens == 300  # file over env
    assert config.sampling.top_k == 7  # env over default
    assert config.kv_cache.device_memory_utilization == 0.9  # default
    assert settings.sources["kv_cache_page_size"] == "flag"
    assert settings.sources["max_batch_input_tokens"] == f"config file {file}"
    assert settings.sources["top_k"] == "env MAX_TOP_K"
    assert settings.source_of("device_memory_utilization") == "default"


def test_config_file_and_section_name_may_come_from_the_environment(tmp_path):
    file = write(tmp_path, "c.json", json.dumps({"fast": {"kv_cache": {"kv_cache_page_size": 8}}}))
    environ = {"MAX_CONFIG_FILE": file, "MAX_SECTION_NAME": "fast"}
    assert config_of(gather({}, environ=environ, flags=FLAGS)).kv_cache.kv_cache_page_size == 8


def test_nested_groups_flat_keys_and_dashes_in_a_file(tmp_path):
    text = "model:\n  max_length: 99\nruntime:\n  max-batch-size: 4\ndraft:\n  devices: cpu\n--top-p: 0.5\n"
    settings = gather({"config_file": write(tmp_path, "c.yaml", text)}, environ={}, flags=FLAGS)
    assert settings.values == {"config_file": str(tmp_path / "c.yaml"), "max_length": 99, "max_batch_size": 4,
                               "draft_devices": "cpu", "top_p": 0.5}


def test_section_name_picks_one_section(tmp_path):
    file = write(tmp_path, "c.yaml", "small:\n  max_length: 64\nlarge:\n  max_length: 4096\n")
    settings = gather({"config_file": file, "section_name": "large"}, environ={}, flags=FLAGS)
    assert config_of(settings).model.max_length == 4096


@pytest.mark.parametrize(
    ("text", "section", "message"),
    [
        ("max_length: [1, 2", None, "is not valid YAML or JSON"),
        ("- 1\n- 2\n", None, "the top level must be a mapping"),
        ("bogus_setting: 1\n", None, "unknown setting 'bogus_setting'"),
        ("kv_cache:\n  max_length: 5\n", None, "unknown setting 'max_length' in section 'kv_cache'"),
        ("a:\n  max_length: 1\n", "b", "--section-name: no section 'b'"),
        ("config_file: other.yaml\n", None, "cannot be set inside a config file"),
    ],
)
def test_bad_config_files_name_the_file_and_problem(tmp_path, text, section, message):
    cli = {"config_file": write(tmp_path, "bad.yaml", text)}
    if section:
        cli["section_name"] = section
    with pytest.raises(ConfigError, match=message):
        gather(cli, environ={}, flags=FLAGS)


def test_missing_config_file_and_section_without_file(tmp_path):
    with pytest.raises(ConfigError, match="--config-file: .* does not exist"):
        gather({"config_file": str(tmp_path / "none.yaml")}, environ={}, flags=FLAGS)
    with pytest.raises(ConfigError, match="--section-name needs --config-file"):
        gather({"section_name": "x"}, environ={}, flags=FLAGS)


def test_manifest_fills_models_below_explicit_flags():
    manifest = {"main": {"max_length": 128, "devices": "cpu"}, "draft": {"model_path": "d"}}
    settings = gather({"models": manifest, "max_length": 64}, environ={}, flags=FLAGS)
    assert settings.values["max_length"] == 64
    assert settings.values["devices"] == "cpu"
    assert settings.values["draft_model_path"] == "d"
    assert settings.sources["devices"] == "flag --models"


def test_model_override_wins_and_parses_json(tmp_path):
    file = write(tmp_path, "c.yaml", "max_length: 10\n")
    cli = {"config_file": file, "max_length": 20, "model_override": ["main.max_length=30", "main.devices=cpu",
                                                                    "main.weight_path=[\"a\", \"b\"]"]}
    settings = gather(cli, environ={}, flags=FLAGS)
    config = config_of(settings)
    assert config.model.max_length == 30
    assert config.model.devices == "cpu"
    assert config.model.weight_path == ["a", "b"]
    assert settings.sources["max_length"] == "flag --model-override"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("max_length=3", "expected component.field=value"),
        ("main.max_length", "expected component.field=value"),
        ("vae.max_length=3", "unknown component 'vae'"),
        ("main.nope=3", "main has no setting 'nope'"),
    ],
)
def test_malformed_model_override(override, message):
    with pytest.raises(ConfigError, match=message):
        gather({"model_override": [override]}, environ={}, flags=FLAGS)


def test_model_override_value_is_type_checked():
    settings = gather({"model_override": ["main.max_length=\"long\""]}, environ={}, flags=FLAGS)
    with pytest.raises(ConfigError, match="--max-length"):
        config_of(settings)


def test_models_manifest_from_a_file(tmp_path):
    file = write(tmp_path, "m.yaml", "main:\n  max_length: 33\n")
    assert gather({"models": file}, environ={}, flags=FLAGS).values["max_length"] == 33
    with pytest.raises(ConfigError, match="--models: role 'main' must map"):
        gather({"models": '{"main": 3}'}, environ={}, flags=FLAGS)


def test_error_says_where_a_bad_value_came_from(tmp_path):
    file = write(tmp_path, "c.yaml", "kv_cache_page_size: 3\n")
    settings = gather({"config_file": file}, environ={}, flags=FLAGS)
    with pytest.raises(ConfigError) as caught:
        config_of(settings)
    message = str(describe_error(caught.value, settings))
    assert message.startswith("--kv-cache-page-size: must be a power of two")
    assert message.endswith(f"(set by config file {file})")


def test_bad_environment_value_is_a_config_error():
    settings = gather({}, environ={"MAX_MAX_LENGTH": "many"}, flags=FLAGS)
    with pytest.raises(ConfigError, match="--max-length: input should be a valid integer"):
        config_of(settings)


def test_from_flat_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown setting 'prompt'"):
        PipelineConfig.from_flat(prompt=["hi"])


def test_manifest_from_the_environment_is_labelled_so():
    settings = gather({}, environ={"MAX_MODELS": '{"main": {"max_length": 12}}'}, flags=FLAGS)
    assert settings.values["max_length"] == 12
    assert settings.sources["max_length"] == "--models in env MAX_MODELS"
