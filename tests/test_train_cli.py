"""`akd-tf teacher train` and `akd-tf train` end to end on a small NPZ dataset, and their bad-input errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from akd_tf.cli import main

FAST = ["--epochs", "1", "--batch-size", "16", "--val-size", "12"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_cli")
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    images = rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)
    np.savez(root / "three.npz", x=images, y=labels)
    np.savez(root / "four.npz", x=images, y=np.arange(60) % 4)
    return root


@pytest.fixture(scope="module")
def smallest_arch():
    from akd_tf.space import get_space

    return get_space().extreme(largest=False).to_string()


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def teacher(workdir, monkeypatch_module):
    result = _invoke("teacher", "train", "--dataset", workdir / "three.npz", "--out", workdir / "teacher.keras",
                     *FAST)
    assert result.exit_code == 0, result.output
    return workdir / "teacher.keras", result.output


@pytest.fixture(scope="module")
def monkeypatch_module(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("AKD_TF_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield patch
    patch.undo()


def test_teacher_train_saves_the_best_epoch_and_a_summary(workdir, teacher):
    path, output = teacher
    lines = output.splitlines()
    assert lines[0] == f"npz:{workdir / 'three.npz'}@train[mini_train]: 48 mini-train / 12 mini-val examples, " \
                       "3 classes, fed at 32x32x3"
    assert re.fullmatch(r"mini-val top-1 \d+\.\d\d%, top-3 \d+\.\d\d%, loss \d+\.\d{4}", lines[-3])
    assert lines[-2] == f"best mini-val top-1 {lines[-3].split()[2].rstrip(',')} at epoch 1: saved to {path}"
    summary = json.loads((workdir / "teacher.json").read_text())
    assert (summary["teacher_model"], summary["classes"], summary["input_shape"]) == ("resnet20", 3, [32, 32, 3])
    assert summary["train_examples"] == 48 and summary["val_examples"] == 12 and summary["teacher_mode"] == "none"
    assert not (workdir / "teacher.keras.ckpt").exists()


def test_train_distills_and_hits_the_teacher_cache_the_second_time(workdir, teacher, smallest_arch):
    args = ("train", "--arch", smallest_arch, "--teacher", teacher[0], "--dataset", workdir / "three.npz", *FAST)
    first = _invoke(*args, "--out", workdir / "s1.keras")
    second = _invoke(*args, "--out", workdir / "s2.keras", "--json")
    assert first.exit_code == 0, first.output
    assert "teacher: cached (computed, cached)" in first.output.splitlines()[-1]
    assert re.search(r"agreement with teacher \d+\.\d%", first.output)
    summary = json.loads(second.output)
    assert (summary["teacher_mode"], summary["teacher_cache_hit"]) == ("cached", True)
    assert summary["arch"] == smallest_arch and summary["settings"]["distill"]["alpha"] == 0.9
    assert (workdir / "s2.keras").is_file() and (workdir / "s2.json").is_file()


def test_hard_label_training_needs_no_teacher(workdir, smallest_arch):
    result = _invoke("train", "--arch", smallest_arch, "--hard-label", "--dataset", workdir / "three.npz",
                     "--out", workdir / "h.keras", "--json", *FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["teacher_mode"], summary["agreement"], summary["settings"]["distill"]["alpha"]) == (
        "none", None, 0.0)


def test_bad_inputs_are_one_line_errors(workdir, teacher, smallest_arch):
    base = ("train", "--arch", smallest_arch, "--out", workdir / "bad.keras", *FAST)
    missing = _invoke(*base, "--hard-label", "--dataset", workdir / "nope.npz")
    assert missing.exit_code == 1
    assert f"no such file or directory '{workdir / 'nope.npz'}'" in missing.output
    mismatch = _invoke(*base, "--teacher", teacher[0], "--dataset", workdir / "four.npz")
    assert mismatch.exit_code == 1
    assert "teacher model" in mismatch.output and "3 classes but dataset" in mismatch.output
    assert "has 4 classes" in mismatch.output
    channels = _invoke(*base, "--teacher", teacher[0], "--dataset", workdir / "three.npz", "--channels", "1")
    assert channels.exit_code == 1
    assert "expects 3 channels but the students get 1-channel images" in channels.output
    no_teacher = _invoke(*base, "--dataset", workdir / "three.npz")
    assert no_teacher.exit_code == 2
    assert "give --teacher PATH (repeat for an ensemble), or --hard-label" in no_teacher.output
    bad_arch = _invoke("train", "--arch", "nonsense", "--hard-label", "--out", workdir / "x.keras")
    assert bad_arch.exit_code == 2
    assert "Invalid value for --arch: space 'mnasnet': expected 7 blocks separated by ':'" in bad_arch.output
    assert not (workdir / "bad.keras").exists()


def test_teacher_model_choices_are_the_library_s():
    from akd_tf.cli.train import teacher_train
    from akd_tf.teachers import TEACHER_MODELS

    option = next(p for p in teacher_train.params if p.name == "model_name")
    assert tuple(option.type.choices) == TEACHER_MODELS
