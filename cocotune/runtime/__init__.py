"""cocotune.runtime."""
