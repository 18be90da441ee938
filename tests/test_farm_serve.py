"""`akd-tf devices serve` serves the phones this host reaches that no other worker serves, and says why, phone by
phone, when that leaves none; emulated phones over real TCP and the real ADB protocol."""

import re
import socket
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from akd_tf.benchmark import RunSettings
from akd_tf.cli import main
from db_fixtures import device_table
from devicefarm.emulator import EmulatedPhone
from devicefarm.serving import NothingToServe, plan_serving, reach_all
from latency_db import farm
from latency_db.farm_polls import served_by_others, stamp_poll
from latency_db.schema import Device, FarmPoll, utcnow
from latency_db.store import open_store

FAST = RunSettings(num_runs=3, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0, max_secs=10.0)
QUICK = ["--idle-exit", "0.3", "--poll", "0.05", "--cool-to", "45", "--reach-timeout", "1"]
ADVICE = ("Serve each phone from the host it is attached to (`akd-tf devices check NAME` says how one is doing), or "
          "name it with --device to serve it from here all the same.")
KILLED = "A worker that was killed stops counting 30 s after it last asked for work, or when its lease runs out."


@pytest.fixture
def store(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'farm.db'}")


@pytest.fixture
def phones(tmp_path, store, adb_key):
    """Start an emulated phone and store it as registration does (tests/test_farm.py registers for real; serving
    reads only the address and the status); every phone is stopped at the end."""
    started = []

    def start(name, profile="pixel4"):
        phone = EmulatedPhone(profile, state_dir=tmp_path / name).start()
        started.append(phone)
        with store.session() as session:
            session.add(Device(name=name, kind="adb", address=phone.address, model=phone.profile.model, core=7,
                               benchmark_binary="/data/local/tmp/akd-tf/benchmark_model", status="online"))
        return phone

    yield start
    for phone in started:
        phone.stop()


def refused(address: str) -> str:
    return f"cannot connect to {address}: [Errno 111] Connection refused"


def serve(store, *args):
    return CliRunner().invoke(main, ["devices", "serve", *QUICK, *args, "--db", str(store.url)])


def test_serve_serves_the_reachable_phones_and_names_each_one_it_leaves_out(store, phones):
    _, gone, taken = phones("p4"), phones("p6", "pixel6"), phones("p3", "pixel3")
    gone.stop()
    stamp_poll(store, "build-7:4242:a1b2c3", "p3", utcnow() - timedelta(seconds=5))
    job = farm.submit(store, "p4", kind="lut", tflite=b"bytes the phone cannot load", settings=FAST,
                      payload={"key": "k", "table_id": device_table(store, "p4")})
    result = serve(store)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "checking which registered phones this host reaches (up to 1 s)"
    assert re.fullmatch(rf"not serving p3 \({re.escape(taken.address)}\): served by worker build-7:4242:a1b2c3, "
                        r"asked for work [5-9] s ago", lines[1])
    assert lines[2] == f"not serving p6 ({gone.address}): unreachable: {refused(gone.address)}"
    assert re.fullmatch(rf"worker \S+ serving p4 from {re.escape(str(store.url))}", lines[3])
    assert lines[4].startswith(f"job {job.job_id} failed: p4: benchmark_model exited with status 127")
    assert lines[5:] == ["handled 1 job: failed 1"]  # served: the phone ran the job, and it failed there
    with store.session() as session:  # the stopped worker's stamp is gone, the other worker's stays
        assert session.execute(select(Device.name, FarmPoll.worker).join(Device)).all() == [
            ("p3", "build-7:4242:a1b2c3")]


def test_serve_with_nothing_to_serve_says_why_for_each_phone_and_exits_1(store, phones):
    assert serve(store).output == (
        "checking which registered phones this host reaches (up to 1 s)\n"
        "Error: no phones registered; add one with `akd-tf devices register HOST:PORT`\n")
    gone, locked, taken = phones("p6", "pixel6"), phones("p4"), phones("p3", "pixel3")
    gone.stop()
    locked.faults.reject_auth = True  # the phone no longer accepts this computer's key
    with store.session() as session:  # another worker is busy with a long job on p3: its stamp is old
        session.execute(Device.__table__.update().where(Device.name == "p3").values(
            lease_holder="build-7:4242:a1b2c3", lease_expires_at=utcnow() + timedelta(seconds=40)))
    started = time.monotonic()
    result = serve(store)
    elapsed_s = time.monotonic() - started
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.splitlines()
    assert lines[:2] == ["checking which registered phones this host reaches (up to 1 s)",
                         "Error: no phone to serve from this host: it cannot serve any of the 3 registered phones:"]
    assert re.fullmatch(rf"  p3 \({re.escape(taken.address)}\): served by worker build-7:4242:a1b2c3, busy with one "
                        r"of its jobs \(lease until \d\d:\d\d:\d\d UTC\)", lines[2])
    assert lines[3].startswith(f"  p4 ({locked.address}): unreachable: {locked.address} did not accept this "
                               "computer's ADB key within 1 s; unlock the phone and accept")
    assert lines[4:] == [f"  p6 ({gone.address}): unreachable: {refused(gone.address)}", ADVICE, KILLED]
    assert elapsed_s < 10  # the phones were tried at once, each for about a second


def test_phones_named_with_device_are_served_whatever_the_checks_found(store, phones):
    gone = phones("p6", "pixel6")
    gone.stop()
    stamp_poll(store, "build-7:4242:a1b2c3", "p6")
    result = serve(store, "--device", "p6")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(rf"Warning: p6 \({re.escape(gone.address)}\): served by worker build-7:4242:a1b2c3, asked "
                        r"for work \d s ago; serving it all the same: the two workers take turns", lines[0])
    assert lines[1] == (f"Warning: p6 ({gone.address}): unreachable: {refused(gone.address)}; serving it all the "
                        "same: a job it fails goes back to the queue, and after 3 failures in a row it counts as "
                        "offline until it answers")
    assert re.fullmatch(r"worker \S+ serving p6 from .*", lines[2]) and lines[3:] == ["handled 0 jobs"]
    unknown = serve(store, "--device", "nope")
    assert (unknown.exit_code, unknown.output) == (1, "Error: unknown device 'nope'; known devices: p6\n")


def test_a_worker_that_stops_frees_its_phones_for_the_next_one_at_once(store, phones):
    phones("p4")
    assert serve(store).exit_code == 0
    second = serve(store)
    assert second.exit_code == 0 and "serving p4 from" in second.output and "not serving" not in second.output


def test_which_worker_serves_a_phone(store, tmp_path):
    now = utcnow()
    with store.session() as session:
        session.add_all([Device(name=name, kind="adb", model="Pixel 7", status="online") for name in ("a", "b", "c")])
    stamp_poll(store, "me", "a", now)
    stamp_poll(store, "other", "b", now - timedelta(seconds=31))  # too old: that worker is gone
    with store.session() as session:
        assert served_by_others(session, ["a", "b", "c"], "me", now) == {}
        session.execute(Device.__table__.update().where(Device.name == "c").values(
            lease_holder="other", lease_expires_at=now + timedelta(seconds=1)))
    stamp_poll(store, "other", "a", now - timedelta(seconds=29))
    with store.session() as session:
        found = served_by_others(session, ["a", "b", "c"], "me", now)
    assert {name: (o.worker, o.polled_at is not None, o.lease_expires_at is not None)
            for name, o in found.items()} == {"a": ("other", True, False), "c": ("other", False, True)}
    with pytest.raises(NothingToServe, match=r"^no phones registered"):
        plan_serving(open_store(f"sqlite:///{tmp_path / 'empty.db'}"), worker_id="me")


def test_a_peer_that_never_answers_counts_as_unreachable_within_the_bound(adb_key):
    with socket.socket() as silent:  # accepts TCP connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        address = "127.0.0.1:%d" % silent.getsockname()[1]
        started = time.monotonic()
        errors = reach_all({"mute": address, "serial": "0123456789ABCDEF"}, timeout_s=0.5)
        elapsed_s = time.monotonic() - started
    assert errors["mute"].startswith(f"cannot connect to {address}: ") and elapsed_s < 2.0
    assert errors["serial"].startswith("cannot open USB device '0123456789ABCDEF': ")
