"""Whatever a config file holds, `max generate` answers with a config or one error line, exit 0 or 2."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from max_config import generate_flags

KEYS = [spec.key for spec in generate_flags() if spec.key not in ("config_file", "section_name", "print_config")]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(-3, 3), st.text(max_size=8))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
content = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content)
def test_random_config_files(invoke, tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    result = invoke("generate", "--print-config", "--defer-resolve", "--config-file", str(path))
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("Error: ")
