"""What a phone measurement records of the measuring core (governor, frequencies) and of fixed-performance
mode, and how the mode is turned on and off again: real workers and runners, emulated phones over real TCP."""

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from akd_tf.benchmark import RunSettings
from akd_tf.cli import main
from akd_tf.target import ModelTarget
from db_fixtures import device_table
from phone_fixtures import BINARY, install_phone
from devicefarm.connection import PhoneConnection
from devicefarm.emulator import PROFILES, EmulatedPhone
from devicefarm.runner import MeasurementFailed, PhoneLimits, PhoneRunner
from devicefarm.worker import FarmWorker, WorkerOptions
from latency_db import farm
from latency_db.measurements import get_or_create_model
from latency_db.schema import Job, Measurement
from latency_db.store import open_store

FAST = RunSettings(num_runs=3, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0, max_secs=10.0)
LIMITS = PhoneLimits(cool_to_c=45.0, cool_timeout_s=0.0, poll_s=0.1)
STATUS = " ; echo __akd_tf_exit=$?"
MODE = "cmd power set-fixed-performance-mode-enabled"
MODE_ON, MODE_OFF = f"{MODE} true", f"{MODE} false"
NOT_A_MODEL = b"these bytes are no TFLite flatbuffer"
# pixel4 without fixed-performance mode in its power HAL and without scaling_cur_freq
BARE = dataclasses.replace(PROFILES["pixel4"], fixed_performance_mode=False,
                           missing_cpufreq_files=("scaling_cur_freq",))
REFUSED = ("Warning: bare: the phone refused fixed-performance mode (exit status 255: Failed to set "
           "FIXED_PERFORMANCE mode | This is likely because Power HAL AIDL is not implemented on this device); "
           "measuring without it")
# pixel4's prime core (825600-2841600 kHz) in fixed-performance mode, held at 2131200 kHz
FIXED = {"core": 7, "governor": "schedutil", "cur_freq_khz": 2131200, "min_freq_khz": 2131200,
         "max_freq_khz": 2131200, "cpuinfo_max_freq_khz": 2841600, "fixed_performance": True}


@pytest.fixture
def store(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'farm.db'}")


@pytest.fixture
def phones(tmp_path):
    started = []

    def start(profile):
        phone = EmulatedPhone(profile, state_dir=tmp_path / f"phone{len(started)}").start()
        started.append(phone)
        return phone

    yield start
    for phone in started:
        phone.stop()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small real model: (its architecture, its .tflite bytes)."""
    from akd_tf import export
    from db_fixtures import tiny_space

    arch = tiny_space().sample_many(1, seed=1)[0]
    model = export.build_for_export(arch, (32, 32, 3), 4, seed=0)
    path = export.export_tflite(model, tmp_path_factory.mktemp("m") / "tiny.tflite", "none").path
    return arch, Path(path).read_bytes()


def _model_job(store, device: str, tiny) -> farm.Submitted:
    arch, tflite = tiny
    with store.session() as session:
        model_id = get_or_create_model(session, arch, ModelTarget(resolution=32, classes=4)).id
    return farm.submit(store, device, kind="model", tflite=tflite, settings=FAST, payload={"model_id": model_id})


def _lut_job(store, device: str, key: str, tflite: bytes) -> farm.Submitted:
    return farm.submit(store, device, kind="lut", tflite=tflite, settings=FAST,
                       payload={"key": key, "table_id": device_table(store, device)})


def _stored(store, submitted: farm.Submitted) -> Measurement:
    with store.session() as session:
        return session.scalar(select(Measurement).where(Measurement.run_key == submitted.run_key))


def _mode_lines(phone) -> list[str]:
    """What the phone was told about fixed-performance mode, in order, and each benchmark run (``taskset``)."""
    lines = []
    for line in phone.command_log:
        if line.startswith("taskset "):
            lines.append("taskset")
        lines.extend(command for command in (MODE_ON, MODE_OFF) if command + STATUS in line)
    return lines


def test_a_worker_stores_the_core_s_cpufreq_state_and_the_mode_it_measured_in(store, phones, adb_key, tiny):
    """One worker, two phones: a pixel4 measures in fixed-performance mode (on for the worker's whole session,
    through a model it cannot load, off when the worker stops); a phone without the mode and without
    scaling_cur_freq measures without them, with one warning."""
    p4, bare = phones("pixel4"), phones(BARE)
    install_phone(store, p4, "p4", "Pixel 4")
    install_phone(store, bare, "bare", "Bare 4")
    good, broken = _model_job(store, "p4", tiny), _lut_job(store, "p4", "broken", NOT_A_MODEL)
    plain, second = _model_job(store, "bare", tiny), _lut_job(store, "bare", "op", tiny[1])
    logs = []
    worker = FarmWorker(store, ["p4", "bare"], worker_id="w", log=logs.append,
                        options=WorkerOptions(lease_seconds=5.0, poll_s=0.05, idle_exit_s=0.5, limits=LIMITS))
    stats = worker.run()  # serves until both phones have been idle 0.5 s
    assert stats.outcomes == {"done": 3, "failed": 1}
    with store.session() as session:
        assert [session.get(Job, s.job_id).state for s in (good, broken, plain, second)] == [
            "done", "failed", "done", "done"]
        assert session.get(Job, broken.job_id).error.startswith("p4: benchmark_model exited with status 1: ")

    measured = _stored(store, good)
    assert measured.cpu_before == measured.cpu_after == FIXED
    assert measured.thermal_before["status"] == 0 and measured.battery_after["level_pct"] == 85.0
    # on with each measurement (the failing one too), off once the worker stopped serving
    assert _mode_lines(p4) == [MODE_ON, "taskset", MODE_ON, "taskset", MODE_OFF]
    assert p4.fixed_performance_mode is False

    unplain = _stored(store, plain)
    assert unplain.cpu_before == unplain.cpu_after == {
        "core": 7, "governor": "schedutil", "cur_freq_khz": None, "min_freq_khz": 825600, "max_freq_khz": 2841600,
        "cpuinfo_max_freq_khz": 2841600, "fixed_performance": None}
    assert _mode_lines(bare) == [MODE_ON, "taskset", "taskset"]  # asked once: the refusal stands
    assert bare.fixed_performance_mode is None
    assert [line for line in logs if line.startswith("Warning:")] == [REFUSED]


def test_a_failing_measurement_and_an_interrupt_turn_the_mode_off(phones, adb_key, tiny):
    phone = phones("pixel4")
    with PhoneConnection(phone.address) as conn:
        conn.push(Path(__file__), BINARY, mode=0o755)
        runner = PhoneRunner(conn, core=7, benchmark_binary=BINARY, name="p", limits=LIMITS)
        with pytest.raises(MeasurementFailed, match=r"^p: benchmark_model exited with status 1: .*Failed to mmap"):
            runner.measure(NOT_A_MODEL, FAST, "broken.tflite")  # a session of its own
        assert _mode_lines(phone) == [MODE_ON, "taskset", MODE_OFF] and phone.fixed_performance_mode is False
        with pytest.raises(KeyboardInterrupt):
            with runner.session():
                measured = runner.measure(tiny[1], FAST, "m.tflite")
                assert phone.fixed_performance_mode is True
                raise KeyboardInterrupt
    assert _mode_lines(phone)[3:] == [MODE_ON, "taskset", MODE_OFF] and phone.fixed_performance_mode is False
    assert measured.before.cpu == FIXED


def test_serve_without_fixed_performance_records_the_governor_s_own_clock(store, phones, adb_key, tiny):
    phone = phones("pixel4")
    install_phone(store, phone, "p4", "Pixel 4")
    job = _model_job(store, "p4", tiny)
    url = str(store.url)
    served = CliRunner().invoke(main, ["devices", "serve", "--no-fixed-performance", "--idle-exit", "0.5", "--poll",
                                       "0.05", "--cool-to", "45", "--cool-timeout", "0", "--db", url])
    assert served.exit_code == 0, served.output
    assert served.output.splitlines()[-1] == "handled 1 job: done 1"
    idle = {"core": 7, "governor": "schedutil", "cur_freq_khz": 825600, "min_freq_khz": 825600,
            "max_freq_khz": 2841600, "cpuinfo_max_freq_khz": 2841600}
    assert _stored(store, job).cpu_before == idle | {"fixed_performance": False}  # an idle core at its floor
    assert _mode_lines(phone) == ["taskset"] and phone.fixed_performance_mode is None  # never touched

    checked = CliRunner().invoke(main, ["devices", "check", "p4", "--cool-to", "45", "--db", url])
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("p4: ok: battery 85.0% ")
    assert checked.output.rstrip().endswith("governor schedutil, core 7 at 825600 kHz (825600-2841600)")
    as_json = CliRunner().invoke(main, ["devices", "check", "p4", "--cool-to", "45", "--json", "--db", url])
    assert json.loads(as_json.output)[0]["cpu"] == idle
    assert "--fixed-performance / --no-fixed-performance" in CliRunner().invoke(
        main, ["devices", "serve", "--help"]).output
