"""Whole nets: corpus nets vs the numpy reference, caffemodel round trip, safety, errors, CLI."""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest

from cocotune.caffemodel import random_weights, write_caffemodel
from cocotune.convert.command import convert, verify
from cocotune.files import import_generated
from cocotune.frontend.load import load_net
from tests.conftest import EXAMPLES, corpus_file
from tests.reference import caffe_layers as ref

TOL = 1e-4

CORPUS_NETS = [
    "alexnet__BVLC__bvlc_alexnet-deploy.prototxt",
    "caffenet__BVLC__bvlc_reference_caffenet-deploy.prototxt",
    "inception__BVLC__bvlc_googlenet-deploy.prototxt",
    "resnet__KaimingHe__ResNet-50-deploy.prototxt",
    "squeezenet__forresti__SqueezeNet_v1.0-deploy.prototxt",
    "mobilenet__shicai__mobilenet_deploy.prototxt",
    "vgg__ywchao__VGG16-deploy.prototxt",
    "densenet__shicai__DenseNet_121.prototxt",
    "senet__hujie-frank__SE-ResNet-50.prototxt",
    "shufflenet__farmingyard__shufflenet_1x_g3_deploy.prototxt",
    "resnext__soeaver__deploy_resnext50-32x4d.prototxt",
    "inception__soeaver__deploy_inception-v3.prototxt",
    "lenet__BVLC-V1-11a4c16__lenet.prototxt",
    "cifar10__BVLC__cifar10_quick.prototxt",
]
SMALL = {"lenet__BVLC-V1-11a4c16__lenet.prototxt", "cifar10__BVLC__cifar10_quick.prototxt"}


@pytest.mark.parametrize(
    "name",
    [n if n in SMALL else pytest.param(n, marks=pytest.mark.slow) for n in CORPUS_NETS],
)
def test_corpus_net_matches_reference(tmp_path, name):
    path = corpus_file(name)
    net = load_net(path)
    shapes = {b.name: (1, *b.shape[1:]) for b in net.blobs if b.producer and not b.producer.inputs}
    net, plan, module, _ = convert(str(path), tmp_path / "out", input_shapes=shapes)
    report = verify(net, plan, module, None, seed=1, batch=1)
    worst = max(report, key=lambda r: r["max_rel_error"])
    assert worst["max_rel_error"] <= TOL, worst
    assert len(report) > 3


def test_caffemodel_round_trip(tmp_path):
    """random weights → caffemodel → convert --weights → same outputs as the reference."""
    prototxt = EXAMPLES / "inception_digits" / "net.prototxt"
    net = load_net(prototxt)
    weights = random_weights(net, seed=7)
    write_caffemodel(tmp_path / "w.caffemodel", net, weights)
    out = tmp_path / "out"
    convert(str(prototxt), out, str(tmp_path / "w.caffemodel"))
    module = import_generated(out / "model.py")
    model = module.build_model("full")
    model.load_weights(str(out / "full.weights.h5"))
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    want = ref.run_net(net.to_net_parameter(), weights, {"data": x})["prob"]
    got = model.predict(x.transpose(0, 2, 3, 1), verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


HOSTILE = 'x"); import os; os.system("echo pwned") #\nnext'


def test_hostile_names_produce_a_safe_working_model(tmp_path):
    text = f"""
name: {json.dumps(HOSTILE)}
layer {{ name: "data" type: "Input" top: {json.dumps(HOSTILE)}
         input_param {{ shape {{ dim: 1 dim: 2 dim: 5 dim: 5 }} }} }}
module {{
  name: {json.dumps(HOSTILE + " module")}
  layer {{ name: {json.dumps(HOSTILE)} type: "Convolution" bottom: {json.dumps(HOSTILE)}
           top: "c/1" convolution_param {{ num_output: 3 kernel_size: 3 pad: 1 }} }}
  layer {{ name: "for" type: "ReLU" bottom: "c/1" top: "c/1" }}
  layer {{ name: "conv2" type: "Convolution" bottom: "c/1" top: "class"
           convolution_param {{ num_output: 2 kernel_size: 1 }} }}
}}
layer {{ name: "1st layer" type: "Pooling" bottom: "class" top: "w"
         pooling_param {{ pool: AVE global_pooling: true }} }}
"""
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    net, plan, module, _ = convert(str(path), tmp_path / "out")
    source = (tmp_path / "out" / "model.py").read_text()
    tree = ast.parse(source)
    imported = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert imported == {"keras", "layers", "NetworkSpec", "build"}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "os" not in names
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not any(
        c.split(".")[-1] in {"system", "exec", "eval", "__import__"} for c in calls
    ), calls
    # every Caffe name survives as data: the hostile layer name is a Keras layer name
    report = verify(net, plan, module, None)
    assert max(r["max_rel_error"] for r in report) <= TOL
    model = module.build_model("full")
    assert model.get_layer(plan.plan_of(HOSTILE).keras_name).filters == 3


def test_unsupported_layers_reported_before_anything_is_written(tmp_path, run_cli):
    path = tmp_path / "net.prototxt"
    path.write_text(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }\n"
        'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
        "pooling_param { pool: STOCHASTIC kernel_size: 2 } }\n"
        'layer { name: "r" type: "Reduction" bottom: "data" top: "r" }\n'
    )
    result = run_cli("convert", path, "-o", tmp_path / "out")
    assert result.code == 2
    assert "STOCHASTIC pooling" in result.err and "Reduction over the batch axis" in result.err
    assert f"{path}:2:" in result.err and f"{path}:3:" in result.err
    assert "2 layers cannot be converted" in result.err
    assert not (tmp_path / "out").exists()


def test_bad_caffemodel_is_a_user_error(tmp_path, run_cli):
    bad = tmp_path / "w.caffemodel"
    bad.write_bytes(b"\x0a\x05hello\x12\xff\xff\xff")
    result = run_cli(
        "convert",
        EXAMPLES / "resnet_digits" / "net.prototxt",
        "-o",
        tmp_path / "out",
        "--weights",
        bad,
    )
    assert result.code == 2 and "Traceback" not in result.err


def test_convert_cli_verify(tmp_path, run_cli):
    result = run_cli(
        "convert", EXAMPLES / "resnet_digits" / "net.prototxt", "-o", tmp_path / "out", "--verify"
    )
    assert result.code == 0, result.err
    assert "verify: OK" in result.out and "blobs compared" in result.out
    assert (tmp_path / "out" / "README.md").exists()


def test_generated_code_reads_like_keras(tmp_path):
    convert(str(EXAMPLES / "resnet_digits" / "net.prototxt"), tmp_path / "out")
    source = (tmp_path / "out" / "model.py").read_text()
    assert source.startswith("# Generated by cocotune")
    assert "resnet_digits/net.prototxt -- DO NOT EDIT" in source.splitlines()[0]
    assert 'w["res2a_branch2a"], 3, use_bias=False, name=p + "res2a_branch2a"' in source
    assert "# res2a_branch2a (Convolution)" in source
    assert 'padding="same"' not in source
    import black

    assert black.format_str(source, mode=black.Mode(line_length=100)) == source
    allowed = {"keras", "cocotune.runtime", "cocotune.runtime.model", "tensorflow", "numpy"}
    for line in source.splitlines():
        if line.startswith(("import ", "from ")):
            module = line.split()[1]
            assert module in allowed or module.split(".")[0] in {"keras"}, line


def test_outputs_option_exposes_blobs(tmp_path):
    _, plan, module, _ = convert(str(EXAMPLES / "resnet_digits" / "net.prototxt"), tmp_path / "o")
    model = module.build_model("full", outputs=["res3a", "conv1"])
    assert [tuple(t.shape[1:]) for t in model.outputs] == [(10,), (4, 4, 32), (8, 8, 16)]
    with pytest.raises(ValueError, match="did you mean"):
        module.build_model("full", outputs=["res3"])


def test_data_layer_transform_param_becomes_preprocess(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(
        'layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST }\n'
        "  transform_param { scale: 0.5 mean_value: 10 mean_value: 20 mean_value: 30 "
        "crop_size: 3 mirror: true }\n"
        '  data_param { source: "x" batch_size: 2 } }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
        "inner_product_param { num_output: 2 } }\n"
    )
    _, plan, module, _ = convert(str(path), tmp_path / "out", input_shapes={"data": (2, 3, 3, 3)})
    x = np.random.default_rng(0).uniform(0, 255, (2, 5, 6, 3)).astype(np.float32)
    got = np.asarray(module.preprocess(x))
    # Caffe's DataTransformer, TEST phase: centre crop at ((5-3)//2, (6-3)//2), no mirror
    want = (x[:, 1:4, 1:4, :] - np.array([10, 20, 30], np.float32)) * 0.5
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert [b.name for b in plan.model_inputs] == ["data"]
