"""``cocotune gen``: the generated package (DESIGN §6)."""
