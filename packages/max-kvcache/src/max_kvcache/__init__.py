"""max_kvcache."""
