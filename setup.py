"""Package discovery that setup.cfg cannot express on its own.

``packages = find:`` only finds packages under their import name, but three top-level data
directories install under another one (``grammar/`` as ``cocotune.grammar`` etc., so that the
repository root stays readable and cocotune/resources.py finds them the same way in a checkout
and in a wheel). Everything else about the package is in setup.cfg.
"""

from setuptools import find_packages, setup

DATA_PACKAGES = {
    "cocotune.grammar": "grammar",
    "cocotune.codegen_templates": "codegen_templates",
    "cocotune.proto": "proto",
}

setup(
    package_dir={"cocotune": "cocotune", **DATA_PACKAGES},
    packages=find_packages(include=["cocotune", "cocotune.*"]) + sorted(DATA_PACKAGES),
)
