"""Architecture name (`config.json`'s `architectures[0]`) -> model class and weight name mapping.

A `--custom-architectures` module exposes `ARCHITECTURES: list[SupportedArchitecture]`; each
entry is registered like the built-in ones (a custom entry may replace a built-in one).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from max_config.errors import ConfigError
from torch import nn

from max_pipelines.weights.mapping import GGUF_WEIGHT_MAP, HF_WEIGHT_MAP, WeightMap


@dataclass(frozen=True)
class SupportedArchitecture:
    """One model family.

    `model_class(config: dict, max_positions: int)` builds the module (on the meta device at
    load time); it has `forward(input_ids, positions, ctx)`, `compute_logits(hidden)` and
    `tie_weights()`. `weight_map` maps safetensors names, `gguf_weight_map` llama.cpp names
    (None: GGUF files are not supported).
    """

    name: str
    model_class: type[nn.Module]
    weight_map: WeightMap = HF_WEIGHT_MAP
    gguf_weight_map: WeightMap | None = GGUF_WEIGHT_MAP


class ArchitectureRegistry:
    def __init__(self) -> None:
        self._architectures: dict[str, SupportedArchitecture] = {}

    def register(self, arch: SupportedArchitecture) -> None:
        self._architectures[arch.name] = arch

    @property
    def names(self) -> list[str]:
        return sorted(self._architectures)

    def get(self, name: str) -> SupportedArchitecture:
        """The registered architecture, or a ConfigError listing the supported ones."""
        if name not in self._architectures:
            raise ConfigError(
                f"architecture {name!r} is not supported; supported: {', '.join(self.names)}. "
                "Register your own implementation with --custom-architectures."
            )
        return self._architectures[name]

    def load_custom(self, specs: list[str] | tuple[str, ...]) -> None:
        """Import each `module` or `import/path:module` and register its `ARCHITECTURES`."""
        for spec in specs:
            path, sep, module_name = spec.rpartition(":")
            if sep and path and path not in sys.path:
                sys.path.insert(0, path)
            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                raise ConfigError(f"--custom-architectures: cannot import {spec!r}: {e}") from e
            archs = getattr(module, "ARCHITECTURES", None)
            if not isinstance(archs, (list, tuple)) or not all(isinstance(a, SupportedArchitecture) for a in archs):
                raise ConfigError(
                    f"--custom-architectures: module {module_name!r} must expose ARCHITECTURES, "
                    "a list of max_pipelines.registry.SupportedArchitecture"
                )
            for arch in archs:
                self.register(arch)


def _builtin_registry() -> ArchitectureRegistry:
    from max_pipelines.architectures import gemma3, llama, mistral, phi3, qwen2, qwen3

    registry = ArchitectureRegistry()
    for module in (llama, mistral, qwen2, qwen3, gemma3, phi3):
        for arch in module.ARCHITECTURES:
            registry.register(arch)
    return registry


REGISTRY = _builtin_registry()
