"""--custom-architectures imports modules and returns their ARCHITECTURES."""

import pytest

from max_config import ConfigError, load_custom_architectures


def test_path_and_module(tmp_path):
    (tmp_path / "my_archs_a.py").write_text("ARCHITECTURES = ['A1', 'A2']\n")
    (tmp_path / "my_archs_b.py").write_text("ARCHITECTURES = ['B']\n")
    found = load_custom_architectures([f"{tmp_path}:my_archs_a", f"{tmp_path}:my_archs_b"])
    assert found == ["A1", "A2", "B"]
    assert load_custom_architectures(["my_archs_a"]) == ["A1", "A2"]  # now importable by name


def test_missing_module_or_list(tmp_path):
    with pytest.raises(ConfigError, match="--custom-architectures no_such_mod_xyz: cannot import module"):
        load_custom_architectures(["no_such_mod_xyz"])
    (tmp_path / "my_archs_empty.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match="has no ARCHITECTURES list"):
        load_custom_architectures([f"{tmp_path}:my_archs_empty"])
    (tmp_path / "my_archs_broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="RuntimeError: boom"):
        load_custom_architectures([f"{tmp_path}:my_archs_broken"])
