"""cocotune.ir."""
