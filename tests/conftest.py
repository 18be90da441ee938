"""Shared fixtures. Importing akd_tf configures TensorFlow's environment first."""

import akd_tf  # noqa: F401
import pytest

from db_fixtures import HOST_ID

from akd_tf.space import get_space


@pytest.fixture(scope="session")
def space():
    return get_space("mnasnet")


@pytest.fixture(scope="session")
def smallest_arch(space):
    """Cheapest choices everywhere: depthwise-separable 3x3, no SE, narrow, fewest layers."""
    return space.parse(":".join(
        f"dwconv_k3_se0_noskip_w0.75_n{min(space.block_decisions(b)[-1].values)}" for b in range(1, 8)))


@pytest.fixture(scope="session")
def largest_arch(space):
    """Costliest choices everywhere: regular 5x5 conv with SE, widest, most layers."""
    return space.parse(":".join(
        f"conv_k5_se0.25_id_w1.25_n{max(space.block_decisions(b)[-1].values)}" for b in range(1, 8)))


@pytest.fixture(autouse=True)
def isolated_database(monkeypatch, tmp_path):
    """No test touches the user's real database: the default lives under the test's tmp dir. This host's device
    is ``local@test-host`` wherever the tests run (spawned processes inherit it)."""
    monkeypatch.delenv("AKD_TF_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("AKD_TF_HOST_ID", HOST_ID)


@pytest.fixture(scope="session", name="tiny_space")
def tiny_space_fixture():
    from db_fixtures import tiny_space

    return tiny_space()


@pytest.fixture(scope="session")
def key_paths(tmp_path_factory):
    """Two ADB key pairs (``adbkey-one``, ``adbkey-two`` and their ``.pub``), made once."""
    from adb_shell.auth.keygen import keygen

    paths = []
    for name in ("one", "two"):
        path = str(tmp_path_factory.mktemp("keys") / f"adbkey-{name}")
        keygen(path)
        paths.append(path)
    return paths


@pytest.fixture
def adb_key(tmp_path, monkeypatch):
    """This computer's ADB key for a test: a path in the test's directory (made on first use), via AKD_TF_ADB_KEY."""
    path = tmp_path / "keys" / "adbkey"
    monkeypatch.setenv("AKD_TF_ADB_KEY", str(path))
    return path


@pytest.fixture
def phones(tmp_path):
    """``phones(profile="pixel4", **options)``: a started emulated phone (its state under the test's tmp dir);
    every phone started is stopped after the test."""
    from devicefarm.emulator import EmulatedPhone

    started = []

    def start(profile="pixel4", **options):
        phone = EmulatedPhone(profile, state_dir=tmp_path / f"phone{len(started)}", **options).start()
        started.append(phone)
        return phone

    yield start
    for phone in started:
        phone.stop()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small real model: (its architecture, its .tflite bytes)."""
    from pathlib import Path

    from akd_tf import export
    from db_fixtures import tiny_space

    arch = tiny_space().sample_many(1, seed=1)[0]
    model = export.build_for_export(arch, (32, 32, 3), 4, seed=0)
    path = export.export_tflite(model, tmp_path_factory.mktemp("m") / "tiny.tflite", "none").path
    return arch, Path(path).read_bytes()
