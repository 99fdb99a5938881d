"""Data files of cocotune, installed as the package `cocotune.codegen_templates`."""
