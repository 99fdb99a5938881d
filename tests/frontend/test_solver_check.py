"""``cocotune check`` given a solver: recognised, checked as a SolverParameter, nets found."""

from __future__ import annotations

import json

import pytest

from cocotune.frontend.load import load_solver
from cocotune.frontend.solver_check import looks_like_solver
from tests.conftest import corpus_files

SOLVERS = corpus_files("solver__*.prototxt")
NETS = [p for p in corpus_files() if not p.name.startswith("solver__")]

LENET = """name: "tiny"
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { crop_size: 8 mean_value: 1 mean_value: 2 mean_value: 3 }
  data_param { source: "train_lmdb" batch_size: 4 } }
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { crop_size: 8 mean_value: 1 mean_value: 2 mean_value: 3 }
  data_param { source: "test_lmdb" batch_size: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
SOLVER = (
    'net: "nets/tiny.prototxt"\ntest_iter: 5\ntest_interval: 10\nbase_lr: 0.1\n'
    'lr_policy: "step"\nstepsize: 100\ngamma: 0.5\nmax_iter: 300\nsolver_mode: CPU\n'
)


@pytest.mark.parametrize("path", SOLVERS, ids=[p.name for p in SOLVERS])
def test_corpus_solvers_are_checked(run_cli, path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # neither the working dir nor the corpus holds their nets
    result = run_cli("check", path)
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    lines = result.out.splitlines()
    assert lines[0] == f"solver {path} (SolverParameter, checked against caffe.proto)"
    param = load_solver(path)
    net_line = next(l for l in lines if l.split()[:1] == ["net"] and l.startswith("  "))
    assert net_line.split() == ["net", f'"{param.net}"']
    assert any(l.split()[:1] == ["base_lr"] for l in lines)
    missing = next(l for l in lines if l.startswith(f'net "{param.net}"'))
    assert "(TRAIN and TEST): not found; looked at " in missing
    assert str(tmp_path / param.net) in missing
    assert str(path.resolve().parent / param.net) in missing  # the solver folder, symlinks resolved
    data = json.loads(run_cli("check", path, "--json").out)
    assert data["settings"]["net"] == param.net
    assert data["settings"]["base_lr"] == pytest.approx(param.base_lr)
    assert data["settings"]["max_iter"] == param.max_iter
    assert [n["found"] for n in data["nets"]] == [None, None]


@pytest.mark.parametrize("path", SOLVERS + NETS, ids=[p.name for p in SOLVERS + NETS])
def test_solver_detection_on_the_corpus(path):
    assert looks_like_solver(path.read_text()) == path.name.startswith("solver__")


@pytest.mark.parametrize(
    "text,solver",
    [
        ('base_lr: 0.1 net: "n.prototxt"', True),
        ('net_param { name: "x" layer { name: "a" type: "ReLU" } }\nbase_lr: 1', True),
        ('name: "n"\nbase_lr: 0.1\n', False),  # 'name' only exists in a net: a net with a typo
        ('layer { name: "a" type: "ReLU" }\nmax_iter: 3\n', False),
        ("nmae: 'x'\nlayr { }\n", False),  # only typos: reported as a net, as before
        # 'layer' in a comment or a string is not a field
        ('# layer { }\nbase_lr: 0.1 type: "SGD layer {"\n', True),
        ('# layer {\nmax_iter: 3 # input: "x"\n', True),
        ('input: "data"\ninput_dim: 1\n', False),
    ],
)
def test_solver_detection_rules(text, solver):
    assert looks_like_solver(text) is solver


def _write(tmp_path, solver_dir="run", net_dir="run"):
    (tmp_path / solver_dir).mkdir(exist_ok=True)
    (tmp_path / net_dir / "nets").mkdir(parents=True, exist_ok=True)
    (tmp_path / net_dir / "nets" / "tiny.prototxt").write_text(LENET)
    solver = tmp_path / solver_dir / "solver.prototxt"
    solver.write_text(SOLVER)
    return solver


def test_net_next_to_the_solver_is_checked_in_both_phases(run_cli, tmp_path, monkeypatch):
    solver = _write(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = run_cli("check", solver)
    assert result.code == 0, result.err
    found = tmp_path / "run" / "nets" / "tiny.prototxt"
    assert f"net (TRAIN phase): nets/tiny.prototxt -> {found}" in result.out
    assert f"net (TEST phase): nets/tiny.prototxt -> {found}" in result.out
    assert "data(4,3,8,8) label(4)" in result.out and "data(2,3,8,8) label(2)" in result.out
    assert (
        "settings: SGD, base_lr 0.1, lr_policy step (gamma 0.5 every 100), max_iter 300"
        in result.out
    )
    assert "inferred from the file" in result.err  # the data shapes came from the net's fields


def test_working_directory_first_as_caffe_does(run_cli, tmp_path, monkeypatch):
    solver = _write(tmp_path, "run", "run")
    (tmp_path / "cwd" / "nets").mkdir(parents=True)
    (tmp_path / "cwd" / "nets" / "tiny.prototxt").write_text(
        LENET.replace("num_output: 3", "num_output: 7")
    )
    monkeypatch.chdir(tmp_path / "cwd")
    data = json.loads(run_cli("check", solver, "--json").out)
    assert data["nets"][0]["tried"] == [
        str(tmp_path / "cwd" / "nets" / "tiny.prototxt"),
        str(tmp_path / "run" / "nets" / "tiny.prototxt"),
    ]
    assert data["nets"][0]["found"] == str(tmp_path / "cwd" / "nets" / "tiny.prototxt")
    assert data["nets"][0]["summary"]["outputs"] == {"loss": []}
    ip = next(l for l in data["nets"][0]["summary"]["layers"] if l["name"] == "ip")
    assert ip["tops"] == {"ip": [4, 7]}


def test_a_bad_net_fails_the_check(run_cli, tmp_path, monkeypatch):
    solver = _write(tmp_path)
    net = tmp_path / "run" / "nets" / "tiny.prototxt"
    net.write_text(LENET.replace('type: "InnerProduct"', 'type: "ROIPooling"'))
    monkeypatch.chdir(tmp_path)
    result = run_cli("check", solver)
    assert result.code == 2
    assert "the net has errors (see stderr)" in result.out
    assert f"{net}:8:26: error: layer 'ip': unsupported type 'ROIPooling'" in result.err
    assert "Traceback" not in result.err


def test_inline_net_param_with_stages(run_cli, write_net):
    inline = LENET.replace("include { phase: TRAIN }", 'include { stage: "tr" }').replace(
        "include { phase: TEST }", 'include { stage: "te" }'
    )
    path = write_net(
        "net_param {\n" + inline + "}\n"
        'train_state { stage: "tr" }\ntest_state { stage: "te" }\ntest_iter: 1\n'
        'base_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 10\n',
        "solver.prototxt",
    )
    result = run_cli("check", path)
    assert result.code == 0, result.err
    assert "net_param (TRAIN phase, stages tr): (inline)" in result.out
    assert "net_param (TEST phase, stages te): (inline)" in result.out
    assert "data(4,3,8,8)" in result.out and "data(2,3,8,8)" in result.out


def test_every_solver_problem_at_once(run_cli, write_net):
    path = write_net(
        'net: "n.prototxt"\nbase_rl: 0.1\ntype: "Adamm"\nlr_policy: "cosine"\nmax_iter: 1.5\n',
        "solver.prototxt",
    )
    result = run_cli("check", path)
    assert result.code == 2
    assert (
        f"{path}:2:1: error: unknown field 'base_rl' in solver (did you mean 'base_lr'?)"
        in result.err
    )
    assert f"{path}:5:11: error: field 'max_iter' expects an integer, found 1.5" in result.err
    assert result.err.splitlines()[-1] == "error: 2 problems (2 errors)"
    path.write_text('net: "n.prototxt"\ntype: "Adamm"\nlr_policy: "cosine"\n')
    result = run_cli("check", path)
    assert result.code == 2
    assert f"{path}:2:7: error: unknown solver type 'Adamm': Caffe has SGD, Nesterov" in result.err
    assert f"{path}:3:12: error: unknown lr_policy 'cosine'" in result.err


def test_a_solver_without_a_net(run_cli, write_net):
    path = write_net('base_lr: 0.1\nlr_policy: "fixed"\n', "solver.prototxt")
    result = run_cli("check", path)
    assert result.code == 2
    assert "the solver names no net" in result.err and "Traceback" not in result.err
