"""The measurement job queue (latency_db.jobs) on SQLite and PostgreSQL: leases, outcomes, races, migration."""

import json
import threading
import time
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from hashlib import sha256

import pytest
import sqlalchemy as sa
from sqlalchemy import event, func, inspect, select, text, update

from akd_tf.benchmark import BenchmarkResult, RunSettings
from db_fixtures import db_url, device_table  # noqa: F401  (fixture)
from latency_db.exchange import export_table, import_table
from latency_db.job_models import ModelBytesUnavailable, model_bytes
from latency_db.jobs import job_summary, job_table, list_jobs
from latency_db.queue import (Lease, complete, enqueue, fail, job_states, lease_next, renew, retry_elsewhere,
                              wait_for)
from latency_db.schema import Device, Job, JobModel, LutEntry, Measurement, TFLiteModel, utcnow
from latency_db.store import head_revision, open_store

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
SETTINGS = RunSettings(num_runs=50, warmup_runs=1, runtime="benchmark_model 2.16")
TFLITE = b"TFL3-not-really-a-model"
TFLITE_SHA = sha256(TFLITE).hexdigest()
REASON = "adb: device 'pixel-a' not found"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def utc(value: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands back naive UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def result_on(phone: str, median_us: float = 2689.1) -> BenchmarkResult:
    return BenchmarkResult(init_us=1000.0, first_inference_us=3000.0, warmup_mean_us=float("nan"),
                           median_us=median_us, mean_us=median_us, std_us=66.0, min_us=2547.0, max_us=3059.0,
                           p90_us=None, count=371, device=phone, settings=SETTINGS, raw_output=f"output of {phone}")


@pytest.fixture
def store(db_url):  # noqa: F811
    store = open_store(db_url)
    with store.session() as session:
        session.add_all([Device(name="pixel-a", kind="adb", model="Pixel 7", status="online"),
                         Device(name="pixel-b", kind="adb", model="Pixel 7", status="online"),
                         Device(name="galaxy", kind="adb", model="SM-S911B", status="online"),
                         Device(name="bare", kind="adb", status="online"),
                         TFLiteModel(space="s", space_version="v1", arch="a", resolution=32, channels=3, classes=4,
                                     quantization="none", macs=10, params=20, sha256="ab")])
    yield store
    store.close()


def model_id(store) -> int:
    with store.session() as session:
        return session.scalar(select(TFLiteModel.id))


def add_jobs(store, device: str, keys, kind: str = "model", tflite: bytes = TFLITE, **kw) -> list[int]:
    mid = model_id(store)
    table_id = device_table(store, device) if kind == "lut" else None
    with store.session() as session:
        return [enqueue(session, kind=kind, device=device, tflite=tflite, settings=SETTINGS, run_key=key,
                        payload={"model_id": mid} if kind == "model" else {"key": key, "table_id": table_id},
                        **kw).id for key in keys]


def job(store, job_id: int) -> Job:
    with store.session() as session:
        return session.get(Job, job_id)


def device(store, name: str) -> Device:
    with store.session() as session:
        return session.scalar(select(Device).where(Device.name == name))


def device_id(store, name: str) -> int:
    return device(store, name).id


def count(store, model) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def summary(store) -> dict:
    with store.session() as session:
        return job_summary(session)


# --- enqueue -------------------------------------------------------------------------------------------------

def test_enqueue_is_idempotent_and_validates(store):
    first, = add_jobs(store, "pixel-a", ["run-1"])
    again, = add_jobs(store, "pixel-a", ["run-1"], max_attempts=5)
    assert again == first
    row = job(store, first)
    assert (row.run_key, row.kind, row.device_id, row.pool, row.state, row.payload, row.settings) == (
        "run-1", "model", device_id(store, "pixel-a"), "Pixel 7", "queued", {"model_id": model_id(store)},
        asdict(SETTINGS))
    assert (row.model_sha256, row.attempts, row.max_attempts, row.lease_holder, row.finished_at) == (
        sha256(TFLITE).hexdigest(), 0, 3, None, None)
    assert summary(store) == {"queued": 1, "leased": 0, "done": 0, "failed": 0}

    def bad(**changes):
        args = dict(kind="model", device="pixel-a", tflite=TFLITE, settings=SETTINGS, run_key="run-x",
                    payload={"model_id": model_id(store)}) | changes
        with pytest.raises(ValueError) as err, store.session() as session:
            enqueue(session, **args)
        return str(err.value)

    assert bad(kind="op") == "kind must be one of model, lut, got 'op'"
    assert bad(payload={"model": 1}) == \
        "payload of a model job must be {\"model_id\": int} (non-empty), got {'model': 1}"
    assert bad(kind="lut", payload={"key": "k"}) == \
        "payload of a lut job must be {\"key\": str, \"table_id\": int} (non-empty), got {'key': 'k'}"
    assert bad(kind="lut", payload={"key": "k", "quantization": "none"}) == (
        "payload of a lut job must be {\"key\": str, \"table_id\": int} (non-empty), got {'key': 'k', "
        "'quantization': 'none'}")
    assert bad(payload={"model_id": 999}) == "payload model_id 999 names no stored model"
    galaxy_table = device_table(store, "galaxy")  # a LUT job stores only into a table of its own device
    assert bad(kind="lut", payload={"key": "k", "table_id": galaxy_table}) == \
        f"payload table_id {galaxy_table} names no latency table of device 'pixel-a'"
    assert bad(device="bare") == \
        "device 'bare' has no model recorded, so no phone pool can run its jobs; probe the device first"
    assert bad(device="nope") == "unknown device 'nope'; known devices: bare, galaxy, pixel-a, pixel-b"
    assert bad(tflite=b"") == "tflite must be the non-empty bytes of a .tflite file, got bytes of length 0"
    assert bad(max_attempts=0) == "max_attempts must be an int >= 1, got 0"
    assert bad(run_key="") == "run_key must be a non-empty string of at most 64 characters, got ''"
    assert count(store, Job) == 1


def test_asking_again_for_a_failed_request_queues_it_afresh(store):
    job_id, = add_jobs(store, "pixel-a", ["run-1"])
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30, now=T0)
    assert fail(store, lease, "unparseable output", raw_output="garbage", now=at(1)) is True
    again, = add_jobs(store, "pixel-a", ["run-1"])
    row = job(store, job_id)
    assert again == job_id
    assert (row.state, row.attempts, row.error, row.raw_output, row.finished_at, row.last_device_id) == (
        "queued", 0, None, None, None, None)
    assert count(store, Job) == 1


def test_concurrent_enqueue_of_one_run_key_gives_one_job(store):
    mid = model_id(store)
    other: dict = {}

    def second_enqueuer():
        with store.session() as session:
            other["id"] = enqueue(session, kind="model", device="pixel-b", tflite=TFLITE, settings=SETTINGS,
                                  payload={"model_id": mid}, run_key="race").id

    with store.session() as session:  # holds its uncommitted insert while the other enqueuer starts
        first = enqueue(session, kind="model", device="pixel-b", tflite=TFLITE, settings=SETTINGS,
                        payload={"model_id": mid}, run_key="race").id
        thread = threading.Thread(target=second_enqueuer)
        thread.start()
        time.sleep(0.3)
    thread.join(30)
    assert other == {"id": first} and count(store, Job) == 1


def test_already_stored_results_enqueue_as_done(store):
    add_jobs(store, "pixel-a", ["m-1"])
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30)
    assert complete(store, lease, result_on("pixel-a"))
    lut, = add_jobs(store, "pixel-a", ["op-key"], kind="lut")
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30)
    assert lease.job_id == lut and complete(store, lease, result_on("pixel-a"))
    # the same measurement under a new job, and the same LUT key under a new run key: nothing left to measure
    table_id = device_table(store, "pixel-a")
    with store.session() as session:
        stored_id = session.scalar(select(Measurement.id))
        again = enqueue(session, kind="lut", device="pixel-a", tflite=TFLITE, settings=SETTINGS, run_key="op-2",
                        payload={"key": "op-key", "table_id": table_id})
        assert (again.state, again.measurement_id, again.finished_at is not None) == ("done", None, True)
    with store.session() as session:
        session.execute(update(Job).where(Job.run_key == "m-1").values(run_key="m-1-old"))
    redo, = add_jobs(store, "pixel-a", ["m-1"])
    assert (job(store, redo).state, job(store, redo).measurement_id) == ("done", stored_id)
    assert lease_next(store, worker="w1", devices=["pixel-a", "pixel-b"], lease_seconds=30) is None
    assert (count(store, Measurement), count(store, LutEntry)) == (1, 1)


# --- leasing -------------------------------------------------------------------------------------------------

def test_lease_is_fifo_within_the_pool_and_a_phone_is_leased_once(store):
    first, galaxy_job, third = (add_jobs(store, "pixel-a", ["a-1"]) + add_jobs(store, "galaxy", ["g-1"])
                                + add_jobs(store, "pixel-b", ["b-1"]))
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=60, now=T0)
    assert lease == Lease(job_id=first, run_key="a-1", kind="model", payload={"model_id": model_id(store)},
                          device_name="pixel-a", worker="w1", expires_at=at(60),
                          model_sha256=sha256(TFLITE).hexdigest(), settings=SETTINGS,
                          requested_device_name="pixel-a")
    assert lease_next(store, worker="w2", devices=["pixel-a"], lease_seconds=60, now=at(1)) is None
    galaxy = lease_next(store, worker="w2", devices=["galaxy"], lease_seconds=60, now=at(1))
    assert (galaxy.job_id, galaxy.device_name, galaxy.requested_device_name) == (galaxy_job, "galaxy", "galaxy")
    other = lease_next(store, worker="w2", devices=["pixel-a", "pixel-b", "galaxy"], lease_seconds=60, now=at(2))
    assert (other.job_id, other.device_name, other.worker) == (third, "pixel-b", "w2")
    assert lease_next(store, worker="w3", devices=["pixel-a", "pixel-b", "galaxy"], lease_seconds=60,
                      now=at(3)) is None
    row, phone = job(store, first), device(store, "pixel-a")
    assert (row.state, row.lease_holder, row.leased_device_id, utc(row.lease_expires_at), row.attempts) == (
        "leased", "w1", phone.id, at(60), 0)
    assert (phone.lease_holder, utc(phone.lease_expires_at)) == ("w1", at(60))
    assert summary(store) == {"queued": 0, "leased": 3, "done": 0, "failed": 0}
    with pytest.raises(ValueError, match=r"^unknown device\(s\) nope; register them before leasing work for them$"):
        lease_next(store, worker="w1", devices=["pixel-a", "nope"], lease_seconds=60)
    with pytest.raises(ValueError, match=r"^lease_seconds must be a finite number of seconds > 0, got 0$"):
        lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=0)


def test_offline_phones_and_unmatched_pools_get_no_work(store):
    add_jobs(store, "galaxy", ["g-1"])
    assert lease_next(store, worker="w1", devices=["pixel-a", "pixel-b"], lease_seconds=60) is None
    with store.session() as session:
        session.execute(update(Device).where(Device.name == "galaxy").values(status="offline"))
    assert lease_next(store, worker="w1", devices=["galaxy"], lease_seconds=60) is None
    assert summary(store) == {"queued": 1, "leased": 0, "done": 0, "failed": 0}


def _worker(url: str, name: str, done: list, errors: list, holders: dict, lock: threading.Lock) -> None:
    store = open_store(url)
    try:
        while True:
            lease = lease_next(store, worker=name, devices=["pixel-a", "pixel-b"], lease_seconds=60)
            if lease is None:
                with store.session() as session:
                    counts = job_summary(session)
                if counts["queued"] == counts["leased"] == 0:
                    return
                time.sleep(0.005)
                continue
            with lock:
                if holders.get(lease.device_name) is not None:
                    errors.append(f"{lease.device_name} leased to {name} while {holders[lease.device_name]} holds it")
                holders[lease.device_name] = name
            time.sleep(0.002)  # "measuring"
            with lock:
                holders[lease.device_name] = None  # the phone stays leased in the database until complete commits
            if complete(store, lease, result_on(lease.device_name)):
                done.append(lease.job_id)
            else:
                errors.append(f"{name} lost job {lease.job_id}")
    except Exception as exc:  # reported to the test thread, which fails on it
        errors.append(f"{name}: {exc!r}")
    finally:
        store.close()


def test_two_workers_racing_run_every_job_exactly_once(store):
    ids = add_jobs(store, "pixel-a", [f"race-{i}" for i in range(10)]) + \
        add_jobs(store, "pixel-b", [f"race-{i}" for i in range(10, 20)])
    done, errors, holders, lock = [], [], {}, threading.Lock()
    threads = [threading.Thread(target=_worker, args=(store.url, f"w{i}", done, errors, holders, lock))
               for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(done) == sorted(ids)
    assert summary(store) == {"queued": 0, "leased": 0, "done": 20, "failed": 0}
    with store.session() as session:
        run_keys = session.scalars(select(Measurement.run_key)).all()
        by_device = dict(session.execute(select(Device.name, func.count()).join(Measurement)
                                         .group_by(Device.name)).all())
        assert session.scalar(select(func.count()).select_from(Device).where(Device.lease_holder.is_not(None))) == 0
    assert sorted(run_keys) == sorted(f"race-{i}" for i in range(20))
    assert by_device == {"pixel-a": 10, "pixel-b": 10}  # stored under the requested device, wherever measured


# --- outcomes ------------------------------------------------------------------------------------------------

def test_complete_stores_the_result_under_the_requested_device(store):
    model_job, = add_jobs(store, "pixel-a", ["m-1"])
    lut_job, = add_jobs(store, "pixel-a", ["op-key"], kind="lut")
    lease = lease_next(store, worker="w1", devices=["pixel-b"], lease_seconds=60, now=T0)
    extra = {"thermal_before": {"cpu": 31.5}, "thermal_after": {"cpu": 35.0}, "battery_before": {"level": 80},
             "battery_after": {"level": 79}, "cpu_before": {"core": 7, "cur_freq_khz": 2131200},
             "cpu_after": {"core": 7, "cur_freq_khz": None}, "started_at": at(5), "finished_at": at(9)}
    assert complete(store, lease, result_on("pixel-b"), extra=extra, now=at(10))
    mid = model_id(store)
    with store.session() as session:
        m = session.scalar(select(Measurement))
        assert (m.run_key, m.device.name, m.model_id, m.p90_us, m.median_us, m.count, m.raw_output) == (
            "m-1", "pixel-a", mid, None, 2689.1, 371, "output of pixel-b")
        assert m.settings == asdict(SETTINGS) | {"measured_on": "pixel-b"}
        assert (m.thermal_before, m.battery_after, utc(m.started_at), utc(m.finished_at)) == (
            {"cpu": 31.5}, {"level": 79}, at(5), at(9))
        assert (m.cpu_before, m.cpu_after) == ({"core": 7, "cur_freq_khz": 2131200}, {"core": 7, "cur_freq_khz": None})
    row = job(store, model_job)
    expected = asdict(result_on("pixel-b")) | {"warmup_mean_us": None}
    del expected["raw_output"]
    assert (row.state, row.result, row.raw_output, row.measurement_id, row.error) == (
        "done", expected, "output of pixel-b", m.id, None)
    assert (row.lease_holder, row.leased_device_id, row.lease_expires_at, row.last_device_id, utc(row.finished_at)) \
        == (None, None, None, device_id(store, "pixel-b"), at(10))
    assert BenchmarkResult.from_dict(row.result).median_us == 2689.1
    phone = device(store, "pixel-b")
    assert (phone.lease_holder, phone.lease_expires_at, phone.consecutive_failures, utc(phone.last_seen_at)) == (
        None, None, 0, at(10))

    lease = lease_next(store, worker="w1", devices=["pixel-b"], lease_seconds=60, now=at(11))
    table_id = device_table(store, "pixel-a")
    assert (lease.job_id, lease.kind, lease.payload) == (lut_job, "lut", {"key": "op-key", "table_id": table_id})
    assert complete(store, lease, result_on("pixel-b", 55.0), now=at(12))
    with store.session() as session:  # into the requested device's table version named by the job
        entry = session.scalar(select(LutEntry))
        assert (entry.table_id, entry.table.device.name, entry.key, entry.median_us, entry.p90_us, entry.count,
                utc(entry.measured_at)) == (table_id, "pixel-a", "op-key", 55.0, None, 371, at(12))
        assert entry.settings == asdict(SETTINGS) | {"measured_on": "pixel-b"}
    with pytest.raises(ValueError, match=r"^unknown extra key\(s\) gpu; expected some of thermal_before, "):
        complete(store, lease, result_on("pixel-b"), extra={"gpu": 1})
    assert complete(store, lease, result_on("pixel-b")) is False  # already done
    assert (count(store, Measurement), count(store, LutEntry)) == (1, 1)


def test_expired_lease_is_reclaimed_and_the_stale_worker_stores_nothing(store):
    job_id, = add_jobs(store, "pixel-a", ["m-1"])
    stale = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30, now=T0)
    assert lease_next(store, worker="w2", devices=["pixel-a", "pixel-b"], lease_seconds=30, now=at(29)) is None
    fresh = lease_next(store, worker="w2", devices=["pixel-a", "pixel-b"], lease_seconds=30, now=at(31))
    assert (fresh.job_id, fresh.device_name, fresh.worker) == (job_id, "pixel-b", "w2")  # prefers another phone
    assert device(store, "pixel-a").lease_holder is None  # the stale phone lease was cleared too
    assert complete(store, stale, result_on("pixel-a"), now=at(32)) is False
    assert renew(store, stale, 30, now=at(32)) is False
    assert fail(store, stale, "corrupt", now=at(32)) is False
    assert count(store, Measurement) == 0
    assert (job(store, job_id).state, job(store, job_id).lease_holder) == ("leased", "w2")
    assert complete(store, fresh, result_on("pixel-b"), now=at(33)) is True
    with store.session() as session:
        m = session.scalar(select(Measurement))
        assert (m.device.name, m.settings["measured_on"], m.raw_output) == ("pixel-a", "pixel-b", "output of pixel-b")
    assert count(store, Measurement) == 1 and job(store, job_id).attempts == 0


def test_renew_extends_the_job_and_the_phone(store):
    job_id, = add_jobs(store, "pixel-a", ["m-1"])
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30, now=T0)
    assert renew(store, lease, 30, now=at(20)) is True
    assert (utc(job(store, job_id).lease_expires_at), utc(device(store, "pixel-a").lease_expires_at)) == (
        at(50), at(50))
    assert lease_next(store, worker="w2", devices=["pixel-a"], lease_seconds=30, now=at(40)) is None
    taken = lease_next(store, worker="w2", devices=["pixel-a"], lease_seconds=30, now=at(51))
    assert (taken.job_id, taken.worker, taken.device_name) == (job_id, "w2", "pixel-a")
    assert renew(store, lease, 30, now=at(52)) is False
    assert (utc(job(store, job_id).lease_expires_at), device(store, "pixel-a").lease_holder) == (at(81), "w2")


def test_fail_is_final(store):
    job_id, = add_jobs(store, "pixel-a", ["m-1"])
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30, now=T0)
    assert fail(store, lease, "unparseable benchmark output", raw_output="Segmentation fault", now=at(3)) is True
    row = job(store, job_id)
    assert (row.state, row.error, row.raw_output, row.attempts, utc(row.finished_at), row.lease_holder) == (
        "failed", "unparseable benchmark output", "Segmentation fault", 1, at(3), None)
    phone = device(store, "pixel-a")
    assert (phone.lease_holder, phone.consecutive_failures, phone.status) == (None, 0, "online")
    assert fail(store, lease, "again") is False and complete(store, lease, result_on("pixel-a")) is False
    assert retry_elsewhere(store, lease, "late") == "lost"
    assert lease_next(store, worker="w1", devices=["pixel-a", "pixel-b"], lease_seconds=30, now=at(4)) is None
    assert summary(store) == {"queued": 0, "leased": 0, "done": 0, "failed": 1}
    with pytest.raises(ValueError, match="^reason must be a non-empty string"):
        fail(store, lease, "")


def test_retry_elsewhere_prefers_another_phone_gives_up_and_marks_the_phone_offline(store):
    first, second = add_jobs(store, "pixel-a", ["j-1", "j-2"])
    lease = lease_next(store, worker="w", devices=["pixel-a"], lease_seconds=30, now=T0)
    assert lease.job_id == first
    assert retry_elsewhere(store, lease, REASON, now=at(1)) == "queued"
    row = job(store, first)
    assert (row.state, row.attempts, row.error, row.last_device_id, row.lease_holder, row.finished_at) == (
        "queued", 1, REASON, device_id(store, "pixel-a"), None, None)
    phone = device(store, "pixel-a")
    assert (phone.consecutive_failures, phone.status, phone.lease_holder) == (1, "online", None)

    lease = lease_next(store, worker="w", devices=["pixel-a", "pixel-b"], lease_seconds=30, now=at(2))
    assert (lease.job_id, lease.device_name) == (first, "pixel-b")  # both free: not the phone that failed
    assert retry_elsewhere(store, lease, "transport dropped", now=at(3)) == "queued"
    lease_b = lease_next(store, worker="w", devices=["pixel-b"], lease_seconds=30, now=at(4))
    assert lease_b.job_id == second  # first last failed on pixel-b, so it waits behind second there
    lease = lease_next(store, worker="w", devices=["pixel-a"], lease_seconds=30, now=at(5))
    assert (lease.job_id, lease.device_name) == (first, "pixel-a")
    assert retry_elsewhere(store, lease, REASON, offline_after=2, now=at(6)) == "failed"
    row = job(store, first)
    assert (row.state, row.attempts, row.error, utc(row.finished_at)) == (
        "failed", 3, f"gave up after 3 attempts: {REASON}", at(6))
    phone = device(store, "pixel-a")
    assert (phone.consecutive_failures, phone.status, phone.lease_holder) == (2, "offline", None)
    add_jobs(store, "pixel-a", ["j-3"])
    assert lease_next(store, worker="w", devices=["pixel-a"], lease_seconds=30, now=at(7)) is None
    assert device(store, "pixel-b").consecutive_failures == 1
    assert complete(store, lease_b, result_on("pixel-b"), now=at(8))
    assert device(store, "pixel-b").consecutive_failures == 0
    assert summary(store) == {"queued": 1, "leased": 0, "done": 1, "failed": 1}


def test_lut_entries_without_p90_export_and_import(store, tmp_path):
    add_jobs(store, "pixel-a", ["op-key"], kind="lut")
    lease = lease_next(store, worker="w", devices=["pixel-a"], lease_seconds=30, now=T0)
    assert complete(store, lease, result_on("pixel-a", 55.0), now=at(1))
    with store.session() as session:
        measured_at = session.scalar(select(LutEntry.measured_at))
    assert utc(measured_at) == at(1)
    assert export_table(store, "pixel-a", "csv") == (
        "space,space_version,quantization,threads,runtime,key,median_us,mean_us,std_us,min_us,p90_us,count,"
        f"measured_at\ntest,v1,none,1,?,op-key,55.0,55.0,66.0,2547.0,,371,{measured_at.isoformat()}\n")
    assert json.loads(export_table(store, "pixel-a", "json"))["tables"][0]["entries"][0]["p90_us"] is None
    for fmt in ("csv", "json"):
        path = tmp_path / f"table.{fmt}"
        path.write_text(export_table(store, "pixel-a", fmt))
        other = open_store(f"sqlite:///{tmp_path / f'other-{fmt}.db'}")
        assert import_table(other, path, "teammate") == (1, 0)
        with other.session() as session:
            assert session.execute(select(LutEntry.key, LutEntry.median_us, LutEntry.p90_us)).all() == [
                ("op-key", 55.0, None)]
        other.close()


# --- watching ------------------------------------------------------------------------------------------------

def test_wait_for_returns_states_reports_progress_and_times_out(store):
    done_id, failed_id, waiting_id = add_jobs(store, "pixel-a", ["w-1", "w-2", "w-3"])
    for outcome in (complete, fail):
        lease = lease_next(store, worker="w", devices=["pixel-a"], lease_seconds=30)
        assert outcome(store, lease, result_on("pixel-a") if outcome is complete else "bad model")
    calls = []
    assert wait_for(store, [failed_id, done_id], progress=lambda *c: calls.append(c)) == {
        done_id: "done", failed_id: "failed"}
    assert calls == [(1, 1, 2)]
    with pytest.raises(TimeoutError) as err:
        wait_for(store, [done_id, waiting_id], timeout_s=0.2, poll_s=0.05)
    assert str(err.value) == "1 of 2 job(s) still pending after 0.2 s (1 done, 0 failed); are workers running?"
    with pytest.raises(ValueError, match=r"^no job with id\(s\) 999$"):
        wait_for(store, [done_id, 999])

    def finish_later():
        time.sleep(0.3)
        complete(store, lease_next(store, worker="w", devices=["pixel-a"], lease_seconds=30), result_on("pixel-a"))

    thread = threading.Thread(target=finish_later)
    thread.start()
    calls.clear()
    assert wait_for(store, [waiting_id, done_id], timeout_s=20, poll_s=0.05, progress=lambda *c: calls.append(c)) \
        == {done_id: "done", waiting_id: "done"}
    thread.join(10)
    assert calls == [(1, 0, 2), (2, 0, 2)]
    assert wait_for(store, []) == {}


def test_wait_for_the_first_returns_once_any_job_finished_with_every_state(store):
    first_id, second_id = add_jobs(store, "pixel-a", ["f-1", "f-2"])
    with pytest.raises(TimeoutError, match=r"^2 of 2 job\(s\) still pending after 0\.2 s "):
        wait_for(store, [first_id, second_id], timeout_s=0.2, poll_s=0.05, first=True)

    def finish_one_later():
        time.sleep(0.3)
        fail(store, lease_next(store, worker="w", devices=["pixel-a"], lease_seconds=30), "bad model")

    thread = threading.Thread(target=finish_one_later)
    thread.start()
    assert wait_for(store, [second_id, first_id], timeout_s=20, poll_s=0.05, first=True) == {
        first_id: "failed", second_id: "queued"}
    thread.join(10)
    assert job_states(store, [first_id, second_id, 999]) == {first_id: "failed", second_id: "queued"}


def test_list_jobs_is_newest_first_and_filters_by_state(store):
    ids = add_jobs(store, "pixel-a", ["l-1", "l-2", "l-3"])
    lease_next(store, worker="w", devices=["pixel-a"], lease_seconds=30)
    with store.session() as session:
        assert [j.id for j in list_jobs(session)] == ids[::-1]
        assert [j.id for j in list_jobs(session, state="queued", limit=1)] == [ids[2]]
        assert [j.id for j in list_jobs(session, state="leased")] == [ids[0]]
        with pytest.raises(ValueError, match=r"^state must be one of queued, leased, done, failed, got 'busy'$"):
            list_jobs(session, state="busy")


def test_job_table_is_the_summary_and_one_row_per_job_as_devices_jobs_shows_them(store):
    from click.testing import CliRunner

    from akd_tf.cli import main

    retried_id, done_id, failed_id, leased_id, queued_id = add_jobs(store, "pixel-a", ["t-r", "t-0", "t-1", "t-2",
                                                                                       "t-3"])
    retried = lease_next(store, worker="w0", devices=["pixel-a"], lease_seconds=30)
    assert retry_elsewhere(store, retried, "transport dropped") == "queued"
    for job_id, phone in ((retried_id, "pixel-b"), (done_id, "pixel-a")):
        lease = lease_next(store, worker="w0", devices=[phone], lease_seconds=30)
        assert lease.job_id == job_id and complete(store, lease, result_on(phone))
    assert fail(store, lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30), "x" * 100 + "tail")
    lease_next(store, worker="w2", devices=["pixel-a"], lease_seconds=30)
    summary, rows = job_table(store)
    assert summary == {"queued": 1, "leased": 1, "done": 2, "failed": 1}
    row = {"kind": "model", "pool": "Pixel 7", "lease_holder": None, "error": ""}
    # attempts: runs so far; a job done at its first run had one, the retried one two (one failed)
    assert rows == [{**row, "id": queued_id, "state": "queued", "attempts": 0},
                    {**row, "id": leased_id, "state": "leased", "attempts": 1, "lease_holder": "w2"},
                    {**row, "id": failed_id, "state": "failed", "attempts": 1, "error": "x" * 80},
                    {**row, "id": done_id, "state": "done", "attempts": 1},
                    {**row, "id": retried_id, "state": "done", "attempts": 2}]
    assert job_table(store, state="failed", limit=1) == (summary, rows[2:3])
    assert job_table(store, limit=2) == (summary, rows[:2])
    shown = CliRunner().invoke(main, ["devices", "jobs", "--json", "--db", str(store.url)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {"summary": summary, "jobs": rows}  # what the CLI builds today
    table = CliRunner().invoke(main, ["devices", "jobs", "--state", "done", "--db", str(store.url)])
    assert table.output.splitlines() == [
        "queued 1, leased 1, done 2, failed 1",
        "id  kind   state  pool     attempts  lease_holder  error",
        "--  -----  -----  -------  --------  ------------  -----",
        f"{done_id:>2}  model  done   Pixel 7         1  None",
        f"{retried_id:>2}  model  done   Pixel 7         2  None"]


# --- model bytes -----------------------------------------------------------------------------------------------

def stored_models(store) -> dict[str, tuple[int, bytes | None]]:
    """``{sha256: (size_bytes, tflite)}`` of every job model."""
    with store.session() as session:
        return {row.sha256: (row.size_bytes, row.tflite) for row in session.scalars(select(JobModel))}


class Statements:
    """The SQL the store sends while the ``with`` block runs."""

    def __init__(self, store):
        self.engine, self.sql = store.engine, []

    def _record(self, _conn, _cursor, statement, *_args):
        self.sql.append(" ".join(statement.split()))

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)

    def naming(self, word: str) -> list[str]:
        return [sql for sql in self.sql if word in sql]


def test_a_model_is_stored_once_and_its_bytes_released_when_its_last_job_is_done(store):
    other = b"TFL3-another-model"
    first, second = add_jobs(store, "pixel-a", ["run-1", "run-2"])
    lut, = add_jobs(store, "pixel-b", ["op"], kind="lut", tflite=other)
    assert stored_models(store) == {TFLITE_SHA: (len(TFLITE), TFLITE),
                                    sha256(other).hexdigest(): (len(other), other)}
    assert {job(store, i).model_sha256 for i in (first, second)} == {TFLITE_SHA}

    with Statements(store) as leasing:
        lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=60, now=T0)
    assert lease.job_id == first and lease.model_sha256 == TFLITE_SHA
    assert leasing.naming("job_models") == [] and leasing.naming("tflite") == []
    assert model_bytes(store, lease.model_sha256) == TFLITE  # what the worker pushes
    with Statements(store) as completing:
        assert complete(store, lease, result_on("pixel-a"), now=at(1))
    touching = completing.naming("job_models")  # only the lock and check; the bytes are neither read nor written
    assert touching and all(sql.startswith("SELECT job_models.sha256, length(job_models.tflite) ")
                            for sql in touching), touching
    assert stored_models(store)[TFLITE_SHA] == (len(TFLITE), TFLITE)  # run-2 still needs them

    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=60, now=at(2))
    assert lease.job_id == second and complete(store, lease, result_on("pixel-a"), now=at(3))
    assert stored_models(store)[TFLITE_SHA] == (len(TFLITE), None)  # released; the row stays for the jobs
    with pytest.raises(ModelBytesUnavailable) as err:
        model_bytes(store, TFLITE_SHA)
    assert str(err.value) == (f"the .tflite bytes of model {TFLITE_SHA} are not stored (released once every job "
                              f"naming them was done); submit the request again to store them")
    assert stored_models(store)[sha256(other).hexdigest()] == (len(other), other)  # its LUT job is queued

    third, = add_jobs(store, "pixel-a", ["run-3"])  # the same model again: its bytes are stored again
    assert stored_models(store)[TFLITE_SHA] == (len(TFLITE), TFLITE) and count(store, JobModel) == 2
    assert model_bytes(store, job(store, third).model_sha256) == TFLITE


def test_failed_jobs_keep_their_model_and_asking_again_measures_the_new_bytes(store):
    fixed = b"TFL3-the-fixed-model"
    job_id, = add_jobs(store, "pixel-a", ["run-1"])
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30, now=T0)
    assert fail(store, lease, "benchmark_model exited with status 1", now=at(1))
    assert model_bytes(store, TFLITE_SHA) == TFLITE  # the model that failed can be inspected
    assert add_jobs(store, "pixel-a", ["run-1"], tflite=fixed) == [job_id]
    row = job(store, job_id)
    assert (row.state, row.model_sha256) == ("queued", sha256(fixed).hexdigest())
    assert stored_models(store) == {TFLITE_SHA: (len(TFLITE), None),  # no job needs the old bytes now
                                    sha256(fixed).hexdigest(): (len(fixed), fixed)}
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30, now=at(2))
    assert model_bytes(store, lease.model_sha256) == fixed


def test_corrupt_model_bytes_are_refused_and_dropped(store):
    job_id, = add_jobs(store, "pixel-a", ["run-1"])
    with store.session() as session:
        session.execute(update(JobModel).values(tflite=b"TFL3-bit-rot"))
    with pytest.raises(ModelBytesUnavailable) as err:
        model_bytes(store, TFLITE_SHA)
    assert str(err.value) == (f"the stored .tflite bytes of model {TFLITE_SHA} are corrupt: 12 bytes with SHA-256 "
                              f"{sha256(b'TFL3-bit-rot').hexdigest()}; they were dropped, submit the request again "
                              f"to store them afresh")
    assert stored_models(store) == {TFLITE_SHA: (len(TFLITE), None)}
    assert add_jobs(store, "pixel-a", ["run-1"]) == [job_id]  # submitting again stores the bytes afresh
    assert model_bytes(store, TFLITE_SHA) == TFLITE
    with pytest.raises(ValueError, match="^model_sha256 must be a non-empty string of at most 64 characters"):
        model_bytes(store, "")


def test_a_job_created_done_stores_only_the_model_hash(store):
    add_jobs(store, "pixel-a", ["op-key"], kind="lut")
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30)
    assert complete(store, lease, result_on("pixel-a"))
    late = b"TFL3-converted-again"
    table_id = device_table(store, "pixel-a")
    with store.session() as session:
        again = enqueue(session, kind="lut", device="pixel-a", tflite=late, settings=SETTINGS, run_key="op-2",
                        payload={"key": "op-key", "table_id": table_id})
        assert (again.state, again.model_sha256) == ("done", sha256(late).hexdigest())
    assert stored_models(store)[sha256(late).hexdigest()] == (len(late), None)


# --- migration -----------------------------------------------------------------------------------------------

def test_migration_0003_round_trip_keeps_data(db_url):  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from latency_db.schema import Base

    store = open_store(db_url, upgrade=False)
    store.upgrade("0003")
    with store.session() as session:
        phone = Device(name="pixel-a", kind="adb", model="Pixel 7", address="10.0.0.7:5555",
                       properties={"abi": "arm64-v8a"}, benchmark_binary="/data/local/tmp/benchmark_model")
        session.add(phone)
        session.flush()
        # revision 0003's columns, written as SQL: today's model has columns that revision lacks
        session.execute(text("INSERT INTO lut_entries (device_id, key, quantization, median_us, mean_us, std_us, "
                             "min_us, p90_us, count, settings, measured_at) VALUES (:device, 'k', 'none', 1.0, 1.0, "
                             "0.0, 1.0, NULL, 5, '{}', :now)"), {"device": phone.id, "now": utcnow()})
    with pytest.raises(ValueError) as err:
        store.downgrade("0002")
    assert str(err.value) == ("cannot downgrade below revision 0003: 0 measurement(s) and 1 LUT entr(y/ies) have no "
                              "p90_us (Android's benchmark_model reports none), which revision 0002 requires; "
                              "delete those rows first")
    assert store.revision() == "0003"
    with store.session() as session:
        session.execute(update(LutEntry).values(p90_us=1.5))
    store.downgrade("0002")
    assert store.revision() == "0002"
    inspector = inspect(store.engine)
    assert "jobs" not in inspector.get_table_names()
    assert {c["name"] for c in inspector.get_columns("devices")}.isdisjoint(
        {"address", "properties", "benchmark_binary", "consecutive_failures", "lease_holder", "lease_expires_at"})
    assert {c["name"]: c["nullable"] for c in inspector.get_columns("lut_entries")}["p90_us"] is False
    with store.engine.connect() as connection:  # devices were altered in place: nothing cascaded away
        assert connection.execute(text("SELECT count(*) FROM lut_entries")).scalar() == 1
        assert connection.execute(text("SELECT name FROM devices")).scalars().all() == ["pixel-a"]
    store.upgrade("0003")
    assert store.revision() == "0003"
    with store.session() as session:
        phone = session.scalar(select(Device))
        assert (phone.address, phone.consecutive_failures, phone.lease_holder) == (None, 0, None)
        assert session.scalar(select(LutEntry.p90_us)) == 1.5
    store.upgrade()
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                Base.metadata) == []
    store.close()


def test_migration_0004_moves_model_bytes_out_of_jobs_and_back(db_url):  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from latency_db.schema import Base

    store = open_store(db_url, upgrade=False)
    store.upgrade("0003")
    shared, lone = b"TFL3-shared", b"TFL3-lone"
    with store.session() as session:
        phone = Device(name="pixel-a", kind="adb", model="Pixel 7")
        session.add(phone)
        session.flush()
        columns = ("run_key", "kind", "device_id", "pool", "state", "tflite_sha256", "attempts", "max_attempts")
        old_jobs = sa.table("jobs", *[sa.column(c) for c in columns],
                            sa.column("payload", sa.JSON), sa.column("settings", sa.JSON),
                            sa.column("tflite", sa.LargeBinary), sa.column("created_at", sa.DateTime(timezone=True)),
                            sa.column("updated_at", sa.DateTime(timezone=True)))
        session.execute(sa.insert(old_jobs), [
            dict(run_key=key, kind="lut", device_id=phone.id, pool="Pixel 7", state=state, tflite=data,
                 tflite_sha256=sha256(data).hexdigest(), attempts=0, max_attempts=3,
                 payload={"key": key, "quantization": "none"}, settings=asdict(SETTINGS), created_at=T0,
                 updated_at=T0)
            for key, state, data in (("a", "done", shared), ("b", "queued", shared), ("c", "done", lone))])
    store.upgrade("0004")
    assert stored_models(store) == {sha256(shared).hexdigest(): (len(shared), shared),  # once, for queued "b"
                                    sha256(lone).hexdigest(): (len(lone), None)}  # only a done job names it
    with store.session() as session:
        assert dict(session.execute(select(Job.run_key, Job.model_sha256)).all()) == {
            "a": sha256(shared).hexdigest(), "b": sha256(shared).hexdigest(), "c": sha256(lone).hexdigest()}
    lease = lease_next(store, worker="w1", devices=["pixel-a"], lease_seconds=30)
    assert lease.run_key == "b" and model_bytes(store, lease.model_sha256) == shared

    store.downgrade("0003")
    inspector = inspect(store.engine)
    assert "job_models" not in inspector.get_table_names()
    assert {c["name"]: c["nullable"] for c in inspector.get_columns("jobs")}["tflite"] is False
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT run_key, tflite, tflite_sha256 FROM jobs ORDER BY run_key")).all()
    assert [(key, bytes(data), digest) for key, data, digest in rows] == [
        ("a", shared, sha256(shared).hexdigest()), ("b", shared, sha256(shared).hexdigest()),
        ("c", b"", sha256(lone).hexdigest())]  # released bytes of a done job come back empty
    store.upgrade()
    assert store.revision() == head_revision() and count(store, JobModel) == 2
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                Base.metadata) == []
    store.close()
