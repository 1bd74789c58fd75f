"""Paged KV cache settings (`--kv-cache-page-size`, `--enable-prefix-caching`, ...)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from .enums import KVCacheFormat, KVConnectorType
from .fields import setting

MAX_PAGE_SIZE = 1024


class KVCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kv_cache_page_size: int = setting(
        128, "The number of tokens in a single page in the paged KVCache (a power of two, 1 to 1024)."
    )
    enable_prefix_caching: bool = setting(True, "Whether to enable prefix caching for the paged KVCache.")
    device_memory_utilization: float = setting(
        0.9,
        "The fraction of the device's total memory that the process may use. The KV cache gets "
        "(total_memory * device_memory_utilization) - model_weights_size - activation_reserve.",
        gt=0.0,
        le=1.0,
    )
    kv_cache_format: KVCacheFormat | None = setting(
        None,
        "Override the default data type for the KV cache. Supported values: float32, bfloat16, float8_e4m3fn.",
        default_text="from the weight encoding",
    )
    kv_connector: KVConnectorType = setting(
        KVConnectorType.null,
        "Type of KV cache connector to use. When not set, defaults to null (no external caching).",
    )
    kv_connector_config: dict[str, Any] = setting(
        help="Connector-specific configuration overrides as inline JSON or path to a YAML/JSON file. Each "
        "connector type has sensible defaults, so this is only needed for customization.",
        default_factory=dict,
        parse="mapping",
    )

    @field_validator("kv_cache_page_size")
    @classmethod
    def _page_size_is_power_of_two(cls, value: int) -> int:
        if not 1 <= value <= MAX_PAGE_SIZE or value & (value - 1):
            raise ValueError(f"must be a power of two from 1 to {MAX_PAGE_SIZE}, got {value}")
        return value
