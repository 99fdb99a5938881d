"""The independent numpy reference of Caffe's layers (see README.md in this directory).

It ships with the package because ``cocotune convert --verify`` compares converted models
against it, and an installed wheel has no ``tests/``. Nothing here imports cocotune code:
importing this package must not pull in the converter it is meant to check.
"""
