"""Each package imports only the layers beneath it and the distributions it declares."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["max-config", "max-kernels", "max-kvcache", "max-pipelines", "max-cli"]
IMPORT_NAME = {name: name.replace("-", "_") for name in LAYERS}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared(package: str) -> set[str]:
    project = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())["project"]
    names = {_requirement_name(r) for r in project.get("dependencies", [])}
    for extra in project.get("optional-dependencies", {}).values():
        names |= {_requirement_name(r) for r in extra}
    return names


def _imported_modules(package: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in (ROOT / "packages" / package / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


DISTRIBUTIONS = {
    module: {d.lower().replace("_", "-") for d in dists}
    for module, dists in importlib.metadata.packages_distributions().items()
}


@pytest.mark.parametrize("package", LAYERS)
def test_imports_follow_the_layering(package):
    own = IMPORT_NAME[package]
    allowed_layers = {IMPORT_NAME[p] for p in LAYERS[: LAYERS.index(package)]}
    declared = _declared(package)
    problems = []
    for module, path in sorted(_imported_modules(package).items()):
        where = path.relative_to(ROOT)
        if module == own or module in sys.stdlib_module_names or module == "__future__":
            continue
        if module in IMPORT_NAME.values():
            dist = module.replace("_", "-")
            if module not in allowed_layers:
                problems.append(f"{where}: imports {module}, a layer above or beside {package}")
            elif dist not in declared:
                problems.append(f"{where}: imports {module} without declaring {dist}")
            continue
        dists = DISTRIBUTIONS.get(module)
        if not dists:
            problems.append(f"{where}: imports {module}, which no installed distribution provides")
        elif not dists & declared:
            problems.append(f"{where}: imports {module} (from {sorted(dists)}) without declaring it")
    assert not problems, "\n".join(problems)
