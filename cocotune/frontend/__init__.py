"""cocotune.frontend."""
