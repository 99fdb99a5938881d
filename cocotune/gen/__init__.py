"""``cocotune gen``: the generated package (docs/design.md §6)."""
