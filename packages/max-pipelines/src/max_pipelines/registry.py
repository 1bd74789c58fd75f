"""Architecture name (`config.json`'s `architectures[0]`) -> model class and weight name mapping.

A `--custom-architectures` module exposes `ARCHITECTURES: list[SupportedArchitecture]`;
max_config imports it and `load_model` looks the model up in `REGISTRY.with_custom(...)`, where each
entry sits beside the built-in ones (a custom entry may replace a built-in one) for that load only.
"""

from __future__ import annotations

from dataclasses import dataclass

from max_config import ConfigError
from torch import nn

from max_pipelines.weights.mapping import GGUF_WEIGHT_MAP, HF_WEIGHT_MAP, WeightMap


@dataclass(frozen=True)
class SupportedArchitecture:
    """One model family.

    `model_class(config: dict, max_positions: int)` builds the module (on the meta device at
    load time); it has `forward(input_ids, positions, ctx)`, `compute_logits(hidden)` and
    `tie_weights()`. `weight_map` maps safetensors names, `gguf_weight_map` llama.cpp names
    (None: GGUF files are not supported). `gguf_architectures` names the GGUF `general.architecture`
    values this class reads beyond the built-in ones (their metadata keys are read as Llama's are).
    """

    name: str
    model_class: type[nn.Module]
    weight_map: WeightMap = HF_WEIGHT_MAP
    gguf_weight_map: WeightMap | None = GGUF_WEIGHT_MAP
    gguf_architectures: tuple[str, ...] = ()


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

    def register_custom(self, architectures: list) -> None:
        """Register the `ARCHITECTURES` entries that `max_config.load_custom_architectures` imported."""
        for arch in architectures:
            if not isinstance(arch, SupportedArchitecture):
                raise ConfigError(
                    f"--custom-architectures: {arch!r} is not a max_pipelines.registry.SupportedArchitecture; "
                    "ARCHITECTURES must list SupportedArchitecture entries"
                )
            self.register(arch)

    def with_custom(self, architectures: list) -> ArchitectureRegistry:
        """A copy with `architectures` registered on top; this registry is left as it was."""
        registry = ArchitectureRegistry()
        registry._architectures = dict(self._architectures)
        registry.register_custom(architectures)
        return registry


def _builtin_registry() -> ArchitectureRegistry:
    from max_pipelines.architectures import gemma3, llama, mistral, phi3, qwen2, qwen3

    registry = ArchitectureRegistry()
    for module in (llama, mistral, qwen2, qwen3, gemma3, phi3):
        for arch in module.ARCHITECTURES:
            registry.register(arch)
    return registry


REGISTRY = _builtin_registry()
