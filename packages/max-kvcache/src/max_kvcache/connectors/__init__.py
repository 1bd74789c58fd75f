"""External KV tiers behind one interface, built by name from `--kv-connector` and `--kv-connector-config`."""

from __future__ import annotations

from max_config.errors import ConfigError

from max_kvcache.connectors.base import ConnectorStats, KVConnector, NullConnector
from max_kvcache.spec import KVCacheSpec

CONNECTORS = ("null", "local", "tiered", "lmcache", "dkv")
_KEYS = {
    "null": set(),
    "local": {"host_bytes", "host_gb"},
    "tiered": {"host_bytes", "host_gb", "disk_dir", "disk_bytes", "disk_gb", "disk_workers"},
    "dkv": {"url", "ttl_s", "timeout_s", "retry_s"},
}
DEFAULT_HOST_GB = 4.0
DEFAULT_DISK_GB = 50.0


def _config_error(message: str) -> ConfigError:
    return ConfigError(f"--kv-connector-config: {message}", key="kv_connector_config")


def _size(config: dict, name: str, default_gb: float) -> int:
    if f"{name}_bytes" in config:
        return int(config[f"{name}_bytes"])
    return int(float(config.get(f"{name}_gb", default_gb)) * 2**30)


def create_connector(
    name: str | None, config: dict | None, spec: KVCacheSpec, model_fingerprint: str = ""
) -> KVConnector:
    """The connector `name` configured by `config`; a bad name or key raises ConfigError naming the flag.

    `model_fingerprint` (e.g. a hash of the weights' identity, float8 scales included) keys every
    stored block together with the KV format and layout, so another model never reads them.
    """
    name = (name or "null").lower()
    config = dict(config or {})
    if name not in CONNECTORS:
        raise ConfigError(f"--kv-connector must be one of {', '.join(CONNECTORS)}, got {name!r}", key="kv_connector")
    if name == "lmcache":
        from max_kvcache.connectors.lmcache import create_lmcache_connector

        return create_lmcache_connector(config, spec, model_fingerprint)
    unknown = sorted(set(config) - _KEYS[name])
    if unknown:
        allowed = ", ".join(sorted(_KEYS[name])) or "none"
        raise _config_error(f"unknown key {unknown[0]!r} for {name} (allowed: {allowed})")
    if name == "null":
        return NullConnector(spec, model_fingerprint)
    if name == "dkv":
        from max_kvcache.connectors.dkv import DKVConnector

        if "url" not in config:
            raise _config_error('dkv needs "url", e.g. {"url": "redis://127.0.0.1:6379/0"}')
        timeouts = float(config.get("timeout_s", 2.0)), float(config.get("retry_s", 5.0))
        return DKVConnector(spec, model_fingerprint, config["url"], config.get("ttl_s"), *timeouts)
    host_blocks = _size(config, "host", DEFAULT_HOST_GB) // spec.packed_block_bytes
    if host_blocks < 1:
        raise _config_error(f"host memory holds no block of {spec.packed_block_bytes} bytes; raise host_bytes")
    if name == "local":
        from max_kvcache.connectors.host import LocalConnector

        return LocalConnector(spec, model_fingerprint, host_blocks)
    from max_kvcache.connectors.tiered import TieredConnector

    disk_bytes = _size(config, "disk", DEFAULT_DISK_GB)
    workers = int(config.get("disk_workers", 2))
    return TieredConnector(spec, model_fingerprint, host_blocks, config.get("disk_dir"), disk_bytes, workers)


__all__ = ["CONNECTORS", "ConnectorStats", "KVConnector", "NullConnector", "create_connector"]
