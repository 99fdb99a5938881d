"""CoCo-Gen: pattern pruning and generated C kernels (being built)."""
