"""A wait on the farm says what it waits for, and says plainly when no worker serves the phone."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner

from akd_tf.benchmark import RunSettings
from akd_tf.cli import main
from akd_tf.errors import WaitTimedOut
from db_fixtures import device_table
from devicefarm.emulator import EmulatedPhone
from devicefarm.phones import register_phone
from devicefarm.runner import PhoneLimits
from devicefarm.worker import FarmWorker, WorkerOptions
from latency_db import farm, queue
from latency_db.farm_polls import SERVED_WITHIN_S, stamp_poll, unserved_pools
from latency_db.schema import Device, FarmPoll, utcnow
from latency_db.store import open_store

FAST = RunSettings(num_runs=3, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0, max_secs=10.0)
LIMITS = PhoneLimits(cool_to_c=45.0, cool_timeout_s=0.0, poll_s=0.1)
MODEL = b"bytes of a model nobody will measure"
ARCH0 = ("mbconv6_k5_se0.25_noskip_w0.75_n0:conv_k3_se0_id_w1_n3:mbconv3_k5_se0.25_id_w1_n3:"
         "mbconv3_k5_se0_id_w1.25_n3:dwconv_k5_se0.25_noskip_w1.25_n3:mbconv6_k3_se0_id_w0.75_n3:"
         "conv_k3_se0_noskip_w1_n0")


@pytest.fixture
def store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'farm.db'}")
    with store.session() as session:
        session.add(Device(name="px", kind="adb", model="Pixel 7", status="online"))
    return store


def test_a_wait_nobody_serves_says_what_it_waits_for_and_that_no_worker_serves_the_phone(store, caplog):
    job = farm.submit(store, "px", kind="lut", tflite=MODEL, settings=FAST,
                      payload={"key": "k", "table_id": device_table(store, "px")})
    caplog.set_level(logging.INFO, logger="latency_db")
    with pytest.raises(WaitTimedOut, match=r"^1 of 1 job\(s\) still pending after 1.2 s \(0 done, 0 failed\)"):
        queue.wait_for(store, [job.job_id], timeout_s=1.2, poll_s=0.1, report_every_s=0.5)
    lines = [(record.levelname, record.getMessage()) for record in caplog.records]
    status = ("INFO", "farm: waiting for 1 of 1 job(s) (0 done, 0 failed) - px: 1 queued")
    warning = ("WARNING", "farm: no `akd-tf devices serve` worker serves px (model Pixel 7; no worker asks for "
                          "work for it): start one on the host the phone is attached to: akd-tf devices serve "
                          "--device px")
    assert lines[:2] == [status, warning]
    assert 2 <= lines.count(status) <= 4 and lines.count(status) == lines.count(warning)  # every 0.5 s


def test_a_pool_is_served_by_a_recent_stamp_or_a_busy_phone(store):
    now = utcnow()
    with store.session() as session:
        assert unserved_pools(session, {"Pixel 7"}, now) == {"Pixel 7": None}
    stamp_poll(store, "worker-a", "px", now - timedelta(seconds=SERVED_WITHIN_S - 1))
    with store.session() as session:
        assert unserved_pools(session, {"Pixel 7"}, now) == {}
    stale = now - timedelta(seconds=SERVED_WITHIN_S + 5)
    stamp_poll(store, "worker-b", "px", stale)  # one row per phone: the newer worker's stamp replaces it
    with store.session() as session:
        assert [(row.worker, row.polled_at.replace(tzinfo=stale.tzinfo)) for row in
                session.query(FarmPoll).all()] == [("worker-b", stale)]
        assert unserved_pools(session, {"Pixel 7"}, now) == {"Pixel 7": stale}
        session.query(Device).filter_by(name="px").update({"lease_expires_at": now + timedelta(seconds=30),
                                                           "lease_holder": "worker-b"})
    with store.session() as session:  # busy with a long job: served, however old its stamp
        assert unserved_pools(session, {"Pixel 7"}, now) == {}


def _stamped(store) -> bool:
    with store.session() as session:
        return session.query(FarmPoll).count() > 0


def test_a_served_phone_draws_no_warning(tmp_path, caplog):
    store = open_store(f"sqlite:///{tmp_path / 'served.db'}")
    phone = EmulatedPhone(state_dir=tmp_path / "phone", profile="pixel4").start()
    try:
        key, binary = tmp_path / "adbkey", tmp_path / "benchmark_model"
        binary.write_bytes(b"\x7fELF placeholder: the emulated phone runs its own benchmark_model\n")
        register_phone(store, phone.address, name="p4", benchmark_binary=binary, key_path=key, limits=LIMITS)
        worker = FarmWorker(store, ["p4"], worker_id="w1", key_path=key,
                            options=WorkerOptions(lease_seconds=5.0, poll_s=0.05, limits=LIMITS))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not _stamped(store) and time.monotonic() < deadline:  # the worker is serving once it stamps
            time.sleep(0.05)
        caplog.set_level(logging.INFO, logger="latency_db")
        job = farm.submit(store, "p4", kind="lut", tflite=MODEL, settings=FAST,
                          payload={"key": "k", "table_id": device_table(store, "p4")})
        states = queue.wait_for(store, [job.job_id], timeout_s=60, poll_s=0.05, report_every_s=0.05)
        with store.session() as session:
            assert session.query(FarmPoll).one().worker == "w1"
        worker.stop.set()
        thread.join(timeout=30)
    finally:
        phone.stop()
    assert states == {job.job_id: "failed"}  # the phone could not load these bytes: served, and failed there
    with store.session() as session:  # a worker that stops removes its stamps: the phone is unserved at once
        assert session.query(FarmPoll).count() == 0
    first = [r.getMessage() for r in caplog.records if r.name == "latency_db.farm"][0]
    assert re.fullmatch(r"farm: waiting for 1 of 1 job\(s\) \(0 done, 0 failed\) - p4: 1 (queued|leased)", first)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("latency_db")]


def test_the_cli_prints_the_wait_and_the_missing_worker_before_giving_up(store):
    """Once each: not also through a handler of the root logger, such as the one absl's logging installs with
    ``logging.basicConfig()`` the first time TensorFlow logs through it (during a conversion)."""
    root_lines = io.StringIO()
    root_handler = logging.StreamHandler(root_lines)
    logging.getLogger().addHandler(root_handler)
    try:
        result = CliRunner().invoke(main, ["latency", "measure", "--arch", ARCH0, "--device", "px", "--resolution",
                                           "32", "--classes", "10", "--wait-timeout", "1", "--db", str(store.url)])
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert "farm:" not in root_lines.getvalue()
    library = logging.getLogger("latency_db")
    assert library.propagate and not library.handlers  # as it was before the command
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "farm: waiting for 1 of 1 job(s) (0 done, 0 failed) - px: 1 queued"
    assert lines[1] == ("Warning: farm: no `akd-tf devices serve` worker serves px (model Pixel 7; no worker asks "
                        "for work for it): start one on the host the phone is attached to: akd-tf devices serve "
                        "--device px")
    assert lines[-1].startswith("Error: 1 of 1 job(s) still pending after 1 s (0 done, 0 failed); are workers "
                                "running?")
