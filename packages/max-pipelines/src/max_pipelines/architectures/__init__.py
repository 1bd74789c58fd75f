"""Native model architectures, one folder each; `registry.py` lists them."""
