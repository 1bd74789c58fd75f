"""Random config-file content never escapes as anything but a ConfigError."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from max_config import ConfigError, check_supported, generate_flags
from max_config.generate import build_generate_config
from max_config.sources import gather

FLAGS = generate_flags()
KEYS = [spec.key for spec in FLAGS if spec.key not in ("config_file", "section_name")]
GROUP_NAMES = ["model", "kv_cache", "runtime", "sampling", "draft", "generate"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=12)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
names = st.one_of(st.sampled_from(KEYS), st.sampled_from(GROUP_NAMES), st.text(max_size=10), st.integers())
content = st.one_of(values, st.dictionaries(names, values, max_size=6))


def check(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        settings_ = gather({"config_file": str(path)}, environ={}, flags=FLAGS)
        config, options = build_generate_config(settings_.values)
        check_supported(config, options, FLAGS)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content)
def test_structured_content(tmp_path, data):
    check(tmp_path, yaml.safe_dump(data))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=60) | st.text(max_size=60))
def test_arbitrary_bytes_and_text(tmp_path, data):
    check(tmp_path, data)
