"""Each training setting's origin is stated: preset, package solver, --solver or a flag."""

from __future__ import annotations

from types import SimpleNamespace

from cocotune.runtime.options import base_parser, settings_report, settings_with_sources


def parse(*argv):
    return base_parser("train.py", "test").parse_args(list(argv))


def test_defaults_say_they_come_from_the_demo_preset():
    settings, sources = settings_with_sources(parse(), None, "demo")
    assert settings.max_iter == 500 and sources["max_iter"] == "preset demo (the default)"
    line = settings_report(settings, sources)
    assert line.startswith("training settings: ")
    assert "base_lr 0.02" in line and "(preset demo (the default))" in line


def test_flags_and_an_explicit_preset_are_named(tmp_path):
    settings, sources = settings_with_sources(
        parse("--preset", "wootz-finetune", "--lr", "0.5", "--batch-size", "8"), None, "demo", 40
    )
    assert (settings.base_lr, settings.batch_size, settings.max_iter) == (0.5, 8, 40)
    assert sources["base_lr"] == "--lr" and sources["batch_size"] == "--batch-size"
    assert sources["max_iter"] == "--steps" and sources["momentum"] == "preset wootz-finetune"
    line = settings_report(settings, sources)
    assert "base_lr 0.5 (--lr)" in line and "max_iter 40 (--steps)" in line


def test_solver_values_and_caffe_defaults_are_told_apart(tmp_path):
    solver = tmp_path / "s.prototxt"
    solver.write_text('base_lr: 0.03\nlr_policy: "fixed"\nmax_iter: 70\ntest_interval: 7\n')
    settings, sources = settings_with_sources(parse("--solver", str(solver)), None, "demo")
    assert (settings.max_iter, settings.test_interval) == (70, 7)
    assert sources["max_iter"] == f"--solver {solver}"
    assert sources["momentum"] == "Caffe default"
    assert sources["batch_size"].startswith("default (a Caffe solver has no batch size)")
    package = SimpleNamespace(doc={"solver": "solver.prototxt"}, dir=tmp_path)
    (tmp_path / "solver.prototxt").write_text(solver.read_text())
    _, from_package = settings_with_sources(parse(), package, "demo")
    assert from_package["base_lr"] == f"package solver {tmp_path / 'solver.prototxt'}"
