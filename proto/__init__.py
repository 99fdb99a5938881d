"""Data files of cocotune, installed as the package `cocotune.proto`."""
