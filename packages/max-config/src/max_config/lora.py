"""LoRA adapter settings (`--enable-lora`, `--lora-paths`, ...)."""

from pydantic import BaseModel, ConfigDict

from .fields import setting


class LoRAConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enable_lora: bool = setting(False, "Enables LoRA adapters.")
    lora_paths: list[str] = setting(
        help="A statically defined LoRA adapter path. Repeatable.", default_factory=list
    )
    max_lora_rank: int = setting(16, "Maximum rank of all possible LoRAs.", ge=1)
    max_num_loras: int = setting(
        1,
        "The maximum number of active LoRAs in a batch. Lower values reduce memory usage but limit "
        "concurrent adapter usage.",
        ge=1,
    )
