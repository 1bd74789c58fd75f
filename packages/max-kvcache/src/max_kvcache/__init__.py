"""max_kvcache: a paged KV cache with prefix caching, host and disk tiers, and connectors."""

from max_kvcache.block_pool import BlockPool, FreeBlockQueue, KVCacheBlock
from max_kvcache.connectors import ConnectorStats, KVConnector, NullConnector, create_connector
from max_kvcache.hashing import NONE_HASH, BlockHash, hash_block_tokens, hash_request_blocks
from max_kvcache.manager import KVCacheManager, KVCacheStats, KVRequest
from max_kvcache.paged_cache import NULL_BLOCK_ID, PagedKVCache
from max_kvcache.spec import KV_FORMATS, KVCacheSpec
from max_kvcache.tables import build_block_tables, build_slot_mapping

__all__ = [
    "KV_FORMATS",
    "NONE_HASH",
    "NULL_BLOCK_ID",
    "BlockHash",
    "BlockPool",
    "ConnectorStats",
    "FreeBlockQueue",
    "KVCacheBlock",
    "KVCacheManager",
    "KVCacheSpec",
    "KVCacheStats",
    "KVConnector",
    "KVRequest",
    "NullConnector",
    "PagedKVCache",
    "build_block_tables",
    "build_slot_mapping",
    "create_connector",
    "hash_block_tokens",
    "hash_request_blocks",
]
