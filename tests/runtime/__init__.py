"""Tests of cocotune.runtime: the MPI coordination layer and the results files."""
