"""Training a gated teacher's gates against the teacher's cached outputs, and the student it carves."""

from __future__ import annotations

import numpy as np
import pytest

import akd_tf.tf_env  # noqa: F401

from akd_tf import data
from akd_tf.errors import InvalidInput
from akd_tf.gate_training import train_gates
from akd_tf.prunable import find_prunable
from akd_tf.teachers import build_teacher_model, load_teacher
from akd_tf.train_settings import GateSettings
from akd_tf.unit_costs import unit_costs

RESOLUTION, CLASSES = 32, 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gates")
    model = build_teacher_model("resnet20", (RESOLUTION, RESOLUTION, 3), CLASSES, seed=5)
    model.save(folder / "teacher.keras")
    teacher = load_teacher(folder / "teacher.keras")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, 96)
    mini_train, mini_val = data.split_train_val(data.ImageDataset.from_arrays(images, labels), val_size=32, seed=0)
    training = data.TrainingData(mini_train, mini_val, RESOLUTION, 3)
    plan = find_prunable(teacher.members[0].model)
    return teacher, training, plan, folder / "cache"


FAST = GateSettings(epochs=3, learning_rate=0.1, batch_size=16)


def test_strength_zero_keeps_every_gate_at_one_and_removes_nothing(setup):
    teacher, training, plan, cache = setup
    run = train_gates(teacher, training, plan, unit_costs(teacher.members[0].model, plan), 0.0, FAST, cache)
    assert all(np.array_equal(values, np.ones_like(values)) for values in run.gates.values())
    assert run.extraction.removed_branches == ()
    assert run.extraction.student.count_params() == teacher.members[0].model.count_params()
    assert run.train.agreement == 1.0  # the gated copy is the teacher


def test_a_huge_strength_leaves_the_minimal_network(setup):
    teacher, training, plan, cache = setup
    run = train_gates(teacher, training, plan, unit_costs(teacher.members[0].model, plan, "macs"), 1e4, FAST, cache)
    assert all(float(values.max()) == 0.0 for values in run.gates.values())  # held at exactly 0, never below
    assert len(run.extraction.removed_branches) == len(plan.branches)
    assert run.gates_below_threshold == plan.num_gates
    student = run.extraction.student
    assert student(np.zeros((2, RESOLUTION, RESOLUTION, 3), np.float32)).shape == (2, CLASSES)


def test_a_moderate_strength_removes_some_units_and_keeps_others(setup):
    teacher, training, plan, cache = setup
    run = train_gates(teacher, training, plan, unit_costs(teacher.members[0].model, plan), 0.38, FAST, cache)
    below = run.gates_below_threshold
    assert 0 < below < plan.num_gates
    teacher_params = teacher.members[0].model.count_params()
    assert run.extraction.student.count_params() < teacher_params


def test_bad_input_is_named(setup):
    teacher, training, plan, cache = setup
    costs = unit_costs(teacher.members[0].model, plan)
    with pytest.raises(InvalidInput, match="must be a number >= 0, got -1.0"):
        train_gates(teacher, training, plan, costs, -1.0, FAST, cache)
    with pytest.raises(InvalidInput, match="gate threshold must be in \\(0, 1\\)"):
        GateSettings(threshold=1.5)
    other = data.TrainingData(training.mini_train, training.mini_val, 48, 3)
    with pytest.raises(InvalidInput, match="takes 32x32 images .* use --resolution 32"):
        train_gates(teacher, other, plan, costs, 1.0, FAST, cache)
