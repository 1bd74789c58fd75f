"""The `lmcache` connector: only available with the optional LMCache package."""

from __future__ import annotations

import importlib.util

from max_kvcache.connectors.base import KVConnector
from max_config.errors import ConfigError
from max_kvcache.spec import KVCacheSpec

INSTALL_HINT = "pip install max-kvcache[lmcache]"


def require_lmcache() -> None:
    """Raise a ConfigError naming the optional extra when LMCache is not installed."""
    if importlib.util.find_spec("lmcache") is None:
        raise ConfigError(f"--kv-connector lmcache needs the LMCache package: {INSTALL_HINT}", key="kv_connector")


def create_lmcache_connector(config: dict, spec: KVCacheSpec, model_fingerprint: str) -> KVConnector:
    require_lmcache()
    from max_kvcache.connectors.lmcache_adapter import LMCacheConnector

    return LMCacheConnector(spec, model_fingerprint, config)
