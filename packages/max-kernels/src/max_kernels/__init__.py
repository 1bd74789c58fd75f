"""max_kernels."""
