"""Saved models with cocotune layers load with keras.saving.load_model after `import cocotune`.

Each side runs in a fresh interpreter: what matters is what a user's new process has
registered, not what this test process happens to have imported already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SAVE = r"""
import sys
import numpy as np
import keras
from cocotune.runtime import layers as caffe
from cocotune.runtime.model import ReconstructionError, TeacherActivation

x_in = keras.Input((7, 7, 3))
pooled = caffe.CaffePooling2D("ave", kernel=3, stride=2, pad=1, name="pool")(x_in)
normed = caffe.LRN(local_size=3, alpha=0.5, name="lrn")(pooled)
teacher = TeacherActivation(name="t")(pooled)
err = ReconstructionError(name="mse")([normed, teacher])
model = keras.Model(x_in, [normed, err])
model.save(sys.argv[1])
x = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype("float32")
np.save(sys.argv[2], x)
np.savez(sys.argv[3], *[np.asarray(o) for o in model(x)])
"""

LOAD = r"""
import json, sys
import numpy as np
{first}
{second}
model = keras.saving.load_model(sys.argv[1])
outs = [np.asarray(o) for o in model(np.load(sys.argv[2]))]
ref = np.load(sys.argv[3])
print(json.dumps({{
    "classes": sorted({{type(l).__module__ + "." + type(l).__name__ for l in model.layers}}),
    "max_diff": max(float(np.max(np.abs(o - ref[f"arr_{{i}}"]))) for i, o in enumerate(outs)),
}}))
"""

NO_COCOTUNE = r"""
import sys
import keras
try:
    keras.saving.load_model(sys.argv[1])
except TypeError as exc:
    print("refused:", "Could not locate class 'CaffePooling2D'" in str(exc))
else:
    print("loaded")
"""


def _python(code: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )


def test_import_cocotune_stays_light():
    """The registration hook must not import Keras/TensorFlow by itself."""
    result = _python(
        "import sys, cocotune\n"
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))\n"
        "print(any(type(f).__name__ == '_AfterKerasImport' for f in sys.meta_path))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True"]


@pytest.mark.slow
def test_saved_model_loads_in_fresh_process_with_import_cocotune(tmp_path):
    path, x, ref = tmp_path / "m.keras", tmp_path / "x.npy", tmp_path / "ref.npz"
    saved = _python(SAVE, path, x, ref)
    assert saved.returncode == 0, saved.stderr
    # The file names the classes by their registered package name.
    import zipfile

    config = zipfile.ZipFile(path).read("config.json").decode()
    for name in ("cocotune>CaffePooling2D", "cocotune>LRN", "cocotune>ReconstructionError"):
        assert name in config

    # Without cocotune, Keras cannot resolve them (what users hit before).
    refused = _python(NO_COCOTUNE, path)
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip() == "refused: True", refused.stdout

    # `import cocotune` before or after `import keras`, or before TensorFlow (which probes for
    # Keras with importlib.util.find_spec, then imports it): all load, outputs identical.
    for first, second in (
        ("import cocotune", "import keras"),
        ("import keras", "import cocotune"),
        ("import cocotune\nimport tensorflow", "import keras"),
    ):
        loaded = _python(LOAD.format(first=first, second=second), path, x, ref)
        assert loaded.returncode == 0, loaded.stderr
        report = json.loads(loaded.stdout.strip().splitlines()[-1])
        assert "cocotune.runtime.layers.pooling.CaffePooling2D" in report["classes"]
        assert "cocotune.runtime.model.ReconstructionError" in report["classes"]
        assert report["max_diff"] == 0.0
