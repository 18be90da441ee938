"""The device farm end to end, against emulated phones over real TCP and the real ADB protocol."""

import hashlib
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from akd_tf.benchmark import RunSettings
from akd_tf.cli import main
from db_fixtures import device_table
from devicefarm.connection import PhoneAuthError, PhoneConnection
from devicefarm.phones import register_phone
from devicefarm.runner import PhoneLimits, PhoneRunner, PhoneUnhealthy
from devicefarm.worker import FarmWorker, WorkerOptions
from latency_db import farm, queue
from latency_db.lut import build_lut, plan_build
from akd_tf.target import ModelTarget
from latency_db.measure import measure_arch
from latency_db.query import query_latency
from latency_db.schema import Device, Job, JobModel, LatencyTable, LutEntry, Measurement
from latency_db.store import open_store

FAST = RunSettings(num_runs=3, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0, max_secs=10.0)
LIMITS = PhoneLimits(cool_to_c=45.0, cool_timeout_s=0.0, poll_s=0.1)
QUICK_WORKER = WorkerOptions(lease_seconds=5.0, poll_s=0.05, idle_exit_s=1.5, limits=LIMITS)


@pytest.fixture
def store(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'farm.db'}")


@pytest.fixture
def binary(tmp_path):
    """What a user passes as --benchmark-binary; the emulator's phone runs its own benchmark_model for it."""
    path = tmp_path / "benchmark_model"
    path.write_bytes(b"\x7fELF placeholder for the emulated phone's benchmark_model\n")
    return path


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    from akd_tf import export
    from db_fixtures import tiny_space

    space = tiny_space()
    model = export.build_for_export(space.sample_many(1, seed=1)[0], (32, 32, 3), 4, seed=0)
    return Path(export.export_tflite(model, tmp_path_factory.mktemp("m") / "tiny.tflite", "none").path).read_bytes()


def runtime_of(binary: Path) -> str:
    """A phone's runtime once ``binary`` is its benchmark_model: ``benchmark_model@sha256:`` and 12 hex digits."""
    return f"benchmark_model@sha256:{hashlib.sha256(binary.read_bytes()).hexdigest()[:12]}"


def _register(store, phone, binary, name):
    return register_phone(store, phone.address, name=name, benchmark_binary=binary, limits=LIMITS).device


def _serve(store, names, worker_id, options=QUICK_WORKER):
    worker = FarmWorker(store, names, worker_id=worker_id, options=options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def test_register_build_lut_measure_query(store, phones, binary, adb_key, tiny_space):
    phone = phones(profile="pixel4")
    device = _register(store, phone, binary, "p4")
    assert (device.kind, device.model, device.core, device.status) == ("adb", "Pixel 4", 7, "online")
    assert device.serial == phone.serial and device.address == phone.address
    assert adb_key.exists() and oct(adb_key.stat().st_mode & 0o777) == "0o600"

    target = ModelTarget(resolution=32, classes=4)
    # served until stopped: an idle exit could come before measure_arch has exported its model
    worker, thread = _serve(store, ["p4"], "w1", WorkerOptions(lease_seconds=5.0, poll_s=0.05, limits=LIMITS))
    summary = build_lut(store, "p4", tiny_space, target, settings=FAST, wait_timeout_s=120)
    assert (summary.total, summary.measured, summary.queued) == (8, 8, 8)
    with store.session() as session:  # each job named the table version being built, and its result went there
        assert {job.payload["table_id"] for job in session.scalars(select(Job))} == {summary.table_id}
        table = session.get(LatencyTable, summary.table_id)
        assert (table.device.name, table.space, table.space_version, table.runtime, table.threads) == (
            "p4", tiny_space.name, tiny_space.version, runtime_of(binary), 1)
    arch = tiny_space.sample_many(1, seed=3)[0]
    row = measure_arch(store, "p4", arch, target, settings=FAST, wait_timeout_s=120)
    worker.stop.set()
    thread.join(timeout=30)
    assert row.count >= 3 and row.settings["runtime"] == runtime_of(binary) and row.settings["core"] == 7
    assert "Inference timings in us" in row.raw_output and row.thermal_before and row.battery_after
    with store.session() as session:
        assert session.scalar(select(func.count()).where(LutEntry.table_id == summary.table_id)) == 8
    [estimate] = query_latency(store, "p4", tiny_space, [arch], target)
    assert estimate.source == "measured" and estimate.latency_ms == pytest.approx(row.min_us / 1000)
    runs = [line for line in phone.command_log if line.startswith("taskset 80 ")]
    assert len(runs) == 1 + 8 + 1  # the registration probe, eight keys, one arch; all on core 7 (mask 0x80)
    assert worker.stats.outcomes["done"] == 9


def test_a_new_benchmark_binary_is_a_new_runtime_and_fails_what_the_old_one_was_asked(
        store, phones, binary, adb_key, tiny_space, tmp_path):
    phone = phones(profile="pixel4")
    old = _register(store, phone, binary, "p4")
    assert old.runtime == runtime_of(binary)
    target = ModelTarget(resolution=32, classes=4)
    asked = build_lut(store, "p4", tiny_space, target, settings=FAST, limit=1, wait=False)  # queued, not served
    with store.session() as session:
        [job] = session.scalars(select(Job)).all()
        assert job.settings["runtime"] == runtime_of(binary)  # part of the job's key: another binary gets another

    upgraded = tmp_path / "benchmark_model-upgraded"
    upgraded.write_bytes(b"\x7fELF another build of benchmark_model\n")
    new = _register(store, phone, upgraded, "p4")  # how a binary is replaced: register the phone again
    assert new.runtime == runtime_of(upgraded) != old.runtime
    assert plan_build(store, "p4", tiny_space, target).table_id is None  # the new runtime's table: not started

    worker, thread = _serve(store, ["p4"], "w1", WorkerOptions(lease_seconds=5.0, poll_s=0.05, limits=LIMITS))
    with pytest.raises(ValueError, match=rf"job {job.id}: p4: this measurement was asked of {old.runtime}, but the "
                                         rf"phone now runs {new.runtime} \(its benchmark binary was replaced\)"):
        farm.await_jobs(store, [job.id], timeout_s=60)
    rebuilt = build_lut(store, "p4", tiny_space, target, settings=FAST, limit=1, wait_timeout_s=120)
    worker.stop.set()
    thread.join(timeout=30)
    assert rebuilt.table_id != asked.table_id and rebuilt.measured == 1
    with store.session() as session:
        assert session.get(LatencyTable, rebuilt.table_id).runtime == new.runtime
        assert session.scalar(select(func.count()).where(LutEntry.table_id == asked.table_id)) == 0  # nothing mixed
        [entry] = session.scalars(select(LutEntry).where(LutEntry.table_id == rebuilt.table_id)).all()
        assert entry.settings["runtime"] == new.runtime


def test_two_phones_two_workers_one_dropping_every_job_done_once(store, phones, binary, adb_key, tiny_tflite):
    steady, flaky = phones(profile="pixel4"), phones(profile="pixel4")
    _register(store, steady, binary, "steady")
    _register(store, flaky, binary, "flaky")
    flaky.faults.drop_during_benchmark = True
    submitted = [farm.submit(store, "steady", kind="lut", tflite=tiny_tflite, settings=FAST,
                             payload={"key": f"op{i}", "table_id": device_table(store, "steady")}) for i in range(6)]
    serving = WorkerOptions(lease_seconds=5.0, poll_s=0.05, limits=LIMITS)  # until stopped
    workers = [_serve(store, ["steady"], "worker-a", serving), _serve(store, ["flaky"], "worker-b", serving)]
    farm.await_jobs(store, [s.job_id for s in submitted], timeout_s=180)
    for worker, thread in workers:
        worker.stop.set()
        thread.join(timeout=30)
    with store.session() as session:
        entries = session.scalars(select(LutEntry)).all()
        assert sorted(e.key for e in entries) == [f"op{i}" for i in range(6)]  # each exactly once
        assert {e.settings["measured_on"] for e in entries} == {"steady"}
        assert {j.state for j in session.scalars(select(Job))} == {"done"}
        flaky_row = session.scalar(select(Device).where(Device.name == "flaky"))
        assert flaky_row.consecutive_failures >= 1  # counted against the phone (offline at 3: test_jobs)
    assert workers[1][0].stats.outcomes["retried"] >= 1 and workers[1][0].stats.outcomes["done"] == 0


def test_garbage_output_fails_the_job_once_and_keeps_the_output(store, phones, binary, adb_key, tiny_tflite):
    phone = phones(profile="pixel3")
    _register(store, phone, binary, "p3")
    phone.faults.garbage_output = True
    job = farm.submit(store, "p3", kind="lut", tflite=tiny_tflite, settings=FAST,
                      payload={"key": "k", "table_id": device_table(store, "p3")})
    _worker, thread = _serve(store, ["p3"], "w")
    with pytest.raises(ValueError, match=r"1 of 1 farm jobs failed: job \d+: p3: unparseable benchmark_model"):
        farm.await_jobs(store, [job.job_id], timeout_s=60)
    thread.join(timeout=30)
    with store.session() as session:
        row = session.get(Job, job.job_id)
        assert (row.state, row.attempts) == ("failed", 1)  # one run, no retry
        assert row.raw_output and "count=" not in row.raw_output
        assert session.scalar(select(Device.status).where(Device.name == "p3")) == "online"


def test_corrupt_model_bytes_fail_the_job_before_anything_is_pushed(store, phones, binary, adb_key, tiny_tflite):
    phone = phones(profile="pixel4")
    _register(store, phone, binary, "p4")
    job = farm.submit(store, "p4", kind="lut", tflite=tiny_tflite, settings=FAST,
                      payload={"key": "k", "table_id": device_table(store, "p4")})
    with store.session() as session:
        digest = session.get(Job, job.job_id).model_sha256
        session.get(JobModel, digest).tflite = tiny_tflite[:-1] + b"\0"
    start = len(phone.command_log)
    worker, thread = _serve(store, ["p4"], "w")
    with pytest.raises(ValueError, match=rf"^1 of 1 farm jobs failed: job {job.job_id}: the stored "
                                         rf"\.tflite bytes of model {digest} are corrupt: {len(tiny_tflite)} bytes "
                                         r"with SHA-256 [0-9a-f]{64}; they were dropped, submit the request again"):
        farm.await_jobs(store, [job.job_id], timeout_s=60)
    thread.join(timeout=30)
    assert worker.stats.outcomes == {"failed": 1}
    assert phone.command_log[start:] == []  # the phone saw no push, no benchmark
    with store.session() as session:
        row = session.get(Job, job.job_id)
        assert (row.state, row.attempts, session.get(JobModel, digest).tflite) == ("failed", 1, None)
        assert session.scalar(select(Device.status).where(Device.name == "p4")) == "online"
    farm.submit(store, "p4", kind="lut", tflite=tiny_tflite, settings=FAST,  # asked again: stored afresh, measured
                payload={"key": "k", "table_id": device_table(store, "p4")})
    worker, thread = _serve(store, ["p4"], "w")
    farm.await_jobs(store, [job.job_id], timeout_s=60)
    thread.join(timeout=30)
    assert worker.stats.outcomes == {"done": 1}


def test_rejected_key_names_the_key_file(phones, adb_key, store, binary):
    phone = phones(profile="pixel4", accept_new_keys=False)
    with pytest.raises(PhoneAuthError) as caught:
        register_phone(store, phone.address, benchmark_binary=binary, auth_timeout_s=1.0)
    assert f"{adb_key}.pub" in str(caught.value) and "Allow USB debugging" in str(caught.value)
    result = CliRunner().invoke(main, ["devices", "register", phone.address, "--benchmark-binary", str(binary),
                                       "--auth-timeout", "1", "--db", str(store.url)])
    assert result.exit_code == 1 and f"{adb_key}.pub" in result.output and "Traceback" not in result.output


def test_a_core_the_phone_lacks_is_named_with_the_phone_s_cores(phones, adb_key, store, binary):
    phone = phones(profile="pixel4")
    with pytest.raises(ValueError, match=r"core 99 is not one of the phone's cores: \[0, 1, 2, 3, 4, 5, 6, 7\]"):
        register_phone(store, phone.address, benchmark_binary=binary, core=99, limits=LIMITS)
    with pytest.raises(ValueError, match="core must be an integer or 'auto', got 'big'"):
        register_phone(store, phone.address, benchmark_binary=binary, core="big", limits=LIMITS)


def test_shell_metacharacters_in_a_model_name_run_nothing(phones, adb_key, tiny_tflite, tmp_path):
    phone = phones(profile="pixel4")
    local = tmp_path / "model.tflite"
    local.write_bytes(tiny_tflite)
    nasty = "m; touch pwned && echo $(touch pwned2) `touch pwned3`.tflite"
    with PhoneConnection(phone.address) as conn:
        conn.push(Path(__file__), "/data/local/tmp/benchmark_model", mode=0o755)
        runner = PhoneRunner(conn, core=7, benchmark_binary="/data/local/tmp/benchmark_model", name="p",
                             limits=LIMITS)
        measured = runner.measure(local, FAST, nasty)
    assert measured.result.count >= 3
    assert not [p for p in phone.root.rglob("pwned*")]
    assert any(line.startswith("sha256sum '/data/local/tmp/akd-tf/models/m; touch pwned") for line in phone.command_log)


def test_a_measurement_is_one_push_and_three_shell_lines(phones, adb_key, tiny_tflite, tmp_path):
    phone = phones(profile="pixel4")
    local = tmp_path / "m.tflite"
    local.write_bytes(tiny_tflite)
    with PhoneConnection(phone.address) as conn:
        conn.push(Path(__file__), "/data/local/tmp/benchmark_model", mode=0o755)
        runner = PhoneRunner(conn, core=7, benchmark_binary="/data/local/tmp/benchmark_model", name="p",
                             limits=LIMITS)
        with runner.session():
            runner.measure(local, FAST, "m.tflite")  # the first also makes the directory
            start = len(phone.command_log)
            measured = runner.measure(tiny_tflite, FAST, "m.tflite")  # from bytes in memory, as a worker does
            during = list(phone.command_log[start:])
            assert phone.fixed_performance_mode is True
    remote, status = "/data/local/tmp/akd-tf/models/m.tflite", " ; echo __akd_tf_exit=$?"
    cpufreq = "".join(f" ; cat /sys/devices/system/cpu/cpu7/cpufreq/{name}{status}" for name in (
        "scaling_governor", "scaling_cur_freq", "scaling_min_freq", "scaling_max_freq", "cpuinfo_max_freq"))
    condition = f" ; dumpsys battery{status} ; dumpsys thermalservice{status}{cpufreq}"
    assert during == [
        f"sha256sum {remote}{status} ; cmd power set-fixed-performance-mode-enabled true{status}{condition}",
        f"taskset 80 /data/local/tmp/benchmark_model --graph={remote} --num_threads=1 --num_runs=3 --warmup_runs=1 "
        f"--min_secs=0 --warmup_min_secs=0 --max_secs=10{status}",
        f"rm -f {remote}{status}{condition}"]
    # the session's end turns the mode off again
    assert phone.command_log[start + 3:] == [f"cmd power set-fixed-performance-mode-enabled false{status}"]
    assert not (phone.root / remote[1:]).exists() and phone.fixed_performance_mode is False
    assert measured.before.battery["level_pct"] == measured.after.battery["level_pct"] == 85.0
    assert measured.before.thermal["status"] == 0 and len(measured.after.thermal["temperatures_c"]) == 6
    # pixel4's prime core in fixed-performance mode: held at 2131200 kHz of its 825600-2841600 kHz
    assert measured.before.cpu == measured.after.cpu == {
        "core": 7, "governor": "schedutil", "cur_freq_khz": 2131200, "min_freq_khz": 2131200,
        "max_freq_khz": 2131200, "cpuinfo_max_freq_khz": 2841600, "fixed_performance": True}


def test_expired_lease_of_a_killed_worker_is_reclaimed(store, phones, binary, adb_key, tiny_tflite):
    phone = phones(profile="pixel6")
    _register(store, phone, binary, "p6")
    job = farm.submit(store, "p6", kind="lut", tflite=tiny_tflite, settings=FAST,
                      payload={"key": "k", "table_id": device_table(store, "p6")})
    dead = queue.lease_next(store, worker="killed-worker", devices=["p6"], lease_seconds=1.0)
    assert dead.job_id == job.job_id
    assert queue.lease_next(store, worker="other", devices=["p6"], lease_seconds=1.0) is None  # phone and job held
    time.sleep(1.2)
    worker, thread = _serve(store, ["p6"], "survivor")
    farm.await_jobs(store, [job.job_id], timeout_s=60)
    thread.join(timeout=30)
    assert worker.stats.outcomes["done"] == 1
    from akd_tf.benchmark import BenchmarkResult

    late = BenchmarkResult.from_samples([1.0], init_us=1, first_inference_us=1, warmup_us=[], device="p6",
                                        settings=FAST)
    assert queue.complete(store, dead, late) is False  # the killed worker's lease is gone: nothing stored twice
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(LutEntry)) == 1


def test_too_hot_phone_is_refused_with_the_reading(phones, adb_key, tiny_tflite, tmp_path):
    phone = phones(profile="pixel4")
    phone.faults.temperature_c = 44.0  # thermal status "moderate": not throttling, but too warm
    local = tmp_path / "m.tflite"
    local.write_bytes(tiny_tflite)
    with PhoneConnection(phone.address) as conn:
        runner = PhoneRunner(conn, core=7, benchmark_binary="/data/local/tmp/benchmark_model", name="hot",
                             limits=PhoneLimits(cool_to_c=40.0, cool_timeout_s=0.3, poll_s=0.1))
        with pytest.raises(PhoneUnhealthy, match=r"hot: refusing to measure: still 44.0 °C after waiting 0.3 s "
                                                 r"to cool to 40 °C"):
            runner.measure(local, FAST, "m.tflite")


def test_devices_cli_list_check_remove(store, phones, binary, adb_key, tiny_space):
    phone = phones(profile="pixel4")
    runner = CliRunner()
    url = str(store.url)
    result = runner.invoke(main, ["devices", "register", phone.address, "--name", "p4", "--benchmark-binary",
                                  str(binary), "--cool-to", "45", "--db", url])
    assert result.exit_code == 0, result.output
    assert "registered p4: Pixel 4" in result.output and "core 7" in result.output
    unserved = runner.invoke(main, ["latency", "measure", "--device", "p4", "--space", "lut-test", "--arch",
                                    "dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1", "--resolution", "32",
                                    "--wait-timeout", "1", "--db", url])
    assert unserved.exit_code == 1 and unserved.exception.__class__ is SystemExit  # a message, not a traceback
    assert unserved.output.splitlines()[-1] == (
        "Error: 1 of 1 job(s) still pending after 1 s (0 done, 0 failed); are workers running?")
    listed = runner.invoke(main, ["devices", "list", "--json", "--db", url])
    rows = {row["name"]: row for row in __import__("json").loads(listed.output)}
    assert set(rows) == {"p4"} and rows["p4"]["status"] == "online" and rows["p4"]["lease_holder"] is None
    assert runner.invoke(main, ["devices", "check", "p4", "--cool-to", "45", "--db", url]).exit_code == 0
    phone.faults.temperature_c = 55.0
    hot = runner.invoke(main, ["devices", "check", "p4", "--cool-to", "45", "--db", url])
    assert hot.exit_code == 1 and "UNHEALTHY" in hot.output and "55.0 °C is above 45 °C" in hot.output
    removed = runner.invoke(main, ["devices", "remove", "p4", "--db", url])
    assert removed.exit_code == 0 and "removed p4" in removed.output
    refused = runner.invoke(main, ["devices", "remove", "local", "--db", url])
    assert refused.exit_code == 1 and refused.output == "Error: 'local' is a host device; only phones are removed\n"


def test_emulate_offers_every_built_in_profile():
    from akd_tf.cli.devices import devices_emulate
    from devicefarm.emulator import PROFILES

    option = next(p for p in devices_emulate.params if p.name == "profile")
    assert sorted(option.type.choices) == sorted(PROFILES)


def test_interrupted_queueing_resumes_without_converting_again(store, phones, binary, adb_key, tiny_space,
                                                               monkeypatch):
    import latency_db.lut as lut

    phone = phones(profile="pixel4")
    _register(store, phone, binary, "p4")
    target = ModelTarget(resolution=32, classes=4)
    first = build_lut(store, "p4", tiny_space, target, settings=FAST, limit=3, wait=False)
    converted = []
    real_export = lut.export_operator
    monkeypatch.setattr(lut, "export_operator",
                        lambda op, *a, **k: converted.append(op.key) or real_export(op, *a, **k))
    second = build_lut(store, "p4", tiny_space, target, settings=FAST, wait=False)
    with store.session() as session:
        queued = session.scalars(select(Job.payload)).all()
    assert (first.queued, second.queued, len(converted), len(queued)) == (3, 8, 5, 8)
    assert sorted(p["key"] for p in queued) == sorted({p["key"] for p in queued})  # one job per key


@pytest.mark.parametrize("args, message", [
    (["register", "127.0.0.1:5555", "--benchmark-binary", "/nonexistent/benchmark_model"],
     "benchmark binary /nonexistent/benchmark_model is not a file"),
    (["register", "phone:99999"], "ADB address 'phone:99999' is not HOST:PORT with a port in 1..65535"),
    (["register", "127.0.0.1:5555", "--core", "big"], "'big' is neither a core number nor 'auto'"),
    (["check"], "no phones registered; add one with `akd-tf devices register HOST:PORT`"),
    (["serve"], "no phones registered"),
    (["remove", "local@elsewhere"], "'local@elsewhere' is a host device; only phones are removed"),
    (["remove", "nope"], "unknown device 'nope'; known devices: none"),
    (["register", "127.0.0.1:5555", "--name", "local@mine"], "the name 'local@mine' is reserved for host devices"),
])
def test_devices_cli_bad_input_is_named(args, message, store, adb_key):
    result = CliRunner().invoke(main, ["devices", *args, "--db", str(store.url)])
    assert result.exit_code in (1, 2) and message in result.output and "Traceback" not in result.output
    assert not adb_key.exists() or args[0] != "register"  # nothing generated for input that is refused up front


NOT_A_MODEL = b"these bytes are no TFLite flatbuffer"


def test_one_request_path_reuses_live_jobs_and_reports_each_request(store, phones, binary, adb_key, tiny_tflite):
    """farm.request_many against a real worker and an emulated phone: a live job is reused without converting,
    a model the phone cannot load fails on the phone, a conversion that raises is that request's error."""
    _register(store, phones(profile="pixel4"), binary, "px")
    table_id = device_table(store, "px")

    def lut(key: str) -> farm.FarmRequest:
        return farm.FarmRequest("lut", {"key": key, "table_id": table_id}, subject=key)

    converted, queued, progress = [], [], []

    def tflite(pending):
        for request in pending:
            converted.append(request.subject)
            if request.subject == "unconvertible":
                raise RuntimeError("conversion of unconvertible failed")
            yield NOT_A_MODEL if request.subject == "bad" else tiny_tflite

    live = farm.submit(store, "px", kind="lut", tflite=tiny_tflite, settings=FAST,
                       payload={"key": "live", "table_id": table_id})
    requests = [lut(key) for key in ("ok", "live", "bad", "unconvertible", "after")]
    worker, thread = _serve(store, ["px"], "w", WorkerOptions(lease_seconds=5.0, poll_s=0.05, limits=LIMITS))
    try:
        outcomes = farm.request_many(store, "px", requests, FAST, tflite=tflite, wait_timeout_s=120,
                                     wait_progress=lambda *counts: progress.append(counts),
                                     on_queued=lambda request: queued.append(request.subject), keep_going=True)
    finally:
        worker.stop.set()
        thread.join(timeout=30)
    assert converted == ["ok", "bad", "unconvertible", "after"]  # the live job's model is not converted again
    assert queued == ["live", "ok", "bad", "after"]  # reused requests first, then each as it is submitted
    ok, reused, bad, unconvertible, after = outcomes
    assert [o.request for o in outcomes] == requests
    assert reused.job == live and (reused.state, reused.failure, reused.exception) == ("done", None, None)
    assert (ok.state, after.state, bad.state) == ("done", "done", "failed")
    assert bad.failure.startswith("px: ") and "Failed to mmap model" in bad.failure
    assert unconvertible.job is None and unconvertible.state is None
    assert str(unconvertible.exception) == "conversion of unconvertible failed"
    assert progress[-1] == (3, 1, 4)
    with pytest.raises(farm.FarmJobsFailed, match=rf"^1 of 4 farm jobs failed: job {bad.job.job_id}: px: "):
        farm.raise_failed(outcomes)
    with store.session() as session:
        assert sorted(session.scalars(select(LutEntry.key))) == ["after", "live", "ok"]

    # asked again: done jobs are live (nothing converted); the failed one is queued afresh; no waiting
    converted.clear()
    again = farm.request_many(store, "px", [lut("ok"), lut("bad")], FAST, tflite=tflite, wait=False)
    assert converted == ["bad"] and [o.job for o in again] == [ok.job, bad.job]
    assert [(o.state, o.failure, o.exception) for o in again] == [(None, None, None)] * 2
    with store.session() as session:
        assert session.get(Job, bad.job.job_id).state == "queued"
    # without keep_going the first conversion error ends the batch at once
    with pytest.raises(RuntimeError, match="^conversion of unconvertible failed$"):
        farm.request_many(store, "px", [lut("unconvertible"), lut("never")], FAST, tflite=tflite, wait=False)
    assert converted == ["bad", "unconvertible"]


def test_search_children_on_a_phone_get_a_latency_or_their_own_error(store, phones, binary, adb_key, tiny_space,
                                                                     monkeypatch):
    """LatencySource on an emulated phone served by a real worker: a child whose model the phone cannot load
    and a child whose conversion fails (both faults planted in the exporter) each get only their own error."""
    import latency_db.measure as measure
    from akd_tf.canonical import canonical_arch
    from search.latency import ChildLatency, LatencySource

    _register(store, phones(profile="pixel4"), binary, "px")
    networks = {}  # three children of three networks
    for arch in tiny_space.sample_many(20, seed=4):
        networks.setdefault(canonical_arch(arch), arch)
    ok, bad, unconvertible = list(networks.values())[:3]
    real_export = measure.export_untrained

    def export(arch, target, out_path, seed):  # given each child's network, as its canonical form
        if arch == canonical_arch(unconvertible):
            raise ValueError("the converter refused\nsecond line")
        exported = real_export(arch, target, out_path, seed)
        if arch == canonical_arch(bad):
            out_path.write_bytes(NOT_A_MODEL)
        return exported

    monkeypatch.setattr(measure, "export_untrained", export)
    worker, thread = _serve(store, ["px"], "w", WorkerOptions(lease_seconds=5.0, poll_s=0.05, limits=LIMITS))
    try:
        source = LatencySource(store, "px", ModelTarget(resolution=32, classes=4), measure=True,
                               wait_timeout_s=120)
        measured, failed, refused = source.latencies([ok, bad, unconvertible])
    finally:
        worker.stop.set()
        thread.join(timeout=30)
    with store.session() as session:
        row = session.get(Measurement, measured.measurement_id)
        assert (measured.latency_ms, measured.source, measured.error) == (row.min_us / 1000, "measured", None)
        assert row.settings["runtime"] == runtime_of(binary)
        bad_job = session.scalar(select(Job).where(Job.state == "failed"))
    assert failed.latency_ms is None
    assert failed.error.startswith(f"farm job {bad_job.id} failed: px: ") and "Failed to mmap model" in failed.error
    assert (refused.latency_ms, refused.error) == (None, "ValueError: the converter refused")
    # Taken the way a search measures on this phone (its benchmark binary, its core, the whole-model repeats): a
    # later search reuses it, here one that mixes stored measurements with predictions (no table: none needed).
    mixed = LatencySource(store, "px", ModelTarget(resolution=32, classes=4), measure=False, mix=True)
    assert mixed.latencies([ok])[0] == ChildLatency(measured.latency_ms, "measured", row.id, 0.0)
    assert mixed.matches(row.settings) and row.settings["core"] is not None
    assert not mixed.matches({**row.settings, "core": row.settings["core"] + 1})  # another core of the phone


@pytest.mark.parametrize("options, message", [
    (dict(lease_seconds=0.0), r"^lease_seconds and poll_s must be > 0, got 0\.0, 1\.0$"),
    (dict(poll_s=-1.0), r"^lease_seconds and poll_s must be > 0, got 60\.0, -1\.0$"),
    (dict(retry_backoff_s=-0.5), r"^retry_backoff_s must be >= 0, got -0\.5$"),
])
def test_worker_options_out_of_range_are_errors_naming_them(options, message):
    with pytest.raises(ValueError, match=message):
        WorkerOptions(**options)
