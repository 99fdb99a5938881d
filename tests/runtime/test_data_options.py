"""The data flags of the generated scripts, and the net's transform_param as their default."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from cocotune.errors import CocotuneError
from cocotune.runtime.options import base_parser, load_data


def package(transform=None, shape=(2, 2, 3), classes=2):
    module = SimpleNamespace(TRANSFORM_PARAMS={"data": transform} if transform else {})
    return SimpleNamespace(input_shape=shape, num_classes=classes, model_module=module)


def parse(*argv):
    return base_parser("explore.py", "test").parse_args(list(argv))


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "d.npz"
    x = np.full((10, 2, 2, 3), 200, np.uint8)
    y = np.arange(10) % 2
    np.savez(path, x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    return str(path)


def test_flags_reach_the_loader(npz):
    data = load_data(
        parse("--data", npz, "--val-fraction", "0.2", "--mean", "100", "--scale", "0.5"), package()
    )
    assert (len(data.x_train), len(data.x_val)) == (8, 2)
    assert float(data.x_test[0, 0, 0, 0]) == 50.0


def test_the_data_layers_transform_param_is_the_default(npz):
    pkg = package({"mean_value": [100.0, 150.0, 200.0], "scale": 0.5, "mirror": True})
    data = load_data(parse("--data", npz), pkg)
    np.testing.assert_array_equal(data.x_test[0, 0, 0], [50.0, 25.0, 0.0])
    text = data.describe()
    assert "mean_value 100,150,200 and scale 0.5 from the net's data layer transform_param" in text
    assert "the data layer's mirror not applied" in text
    flagged = load_data(parse("--data", npz, "--scale", "2"), pkg)  # a flag overrides it all
    assert float(flagged.x_test[0, 0, 0, 0]) == 400.0
    assert flagged.fingerprint() != data.fingerprint()


def test_builtin_digits_ignore_the_transform_and_refuse_a_mismatched_net():
    pkg = package({"scale": 0.00390625}, shape=(8, 8, 1), classes=10)
    data = load_data(parse(), pkg)
    assert float(np.asarray(data.x_train).max()) == 1.0
    assert "not applied to the built-in digits" in data.describe()
    with pytest.raises(CocotuneError, match="digits are 8x8x1 images but the net takes 224x224x3"):
        load_data(parse(), package(shape=(224, 224, 3), classes=1000))
    resized = load_data(parse("--resize"), package(shape=(32, 32, 3), classes=10))
    assert resized.x_val[:2].shape == (2, 32, 32, 3)


def test_bad_flag_values_are_usage_errors(capsys):
    for argv in (["--val-fraction", "1.5"], ["--mean", "1,x"]):
        with pytest.raises(SystemExit) as info:
            parse(*argv)
        assert info.value.code == 2
    assert "--mean takes numbers separated by commas" in capsys.readouterr().err
