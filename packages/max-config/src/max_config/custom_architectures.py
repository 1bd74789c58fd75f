"""`--custom-architectures`: import modules that expose an `ARCHITECTURES` list."""

import importlib
import sys
from typing import Any

from .errors import ConfigError


def load_custom_architectures(specs: list[str]) -> list[Any]:
    """The concatenated `ARCHITECTURES` of each `module` or `import/path:module`."""
    architectures: list[Any] = []
    for spec in specs:
        path, sep, module_name = spec.rpartition(":")
        if not sep:
            module_name, path = spec, ""
        if path and path not in sys.path:
            sys.path.insert(0, path)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigError(
                f"--custom-architectures {spec}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
            ) from None
        found = getattr(module, "ARCHITECTURES", None)
        if not isinstance(found, (list, tuple)):
            raise ConfigError(f"--custom-architectures {spec}: module {module_name!r} has no ARCHITECTURES list")
        architectures.extend(found)
    return architectures
