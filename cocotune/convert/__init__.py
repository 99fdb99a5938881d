"""cocotune.convert."""
