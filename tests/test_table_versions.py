"""Latency tables that say what they measured: table versions, per-host devices, reads that never write,
and the migration of tables from before versions (issue 16), on SQLite and PostgreSQL."""

import json
import re
import socket
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import func, inspect, select, text

from akd_tf.benchmark import RunSettings
from akd_tf.cli import main
from akd_tf.interpreter import load_interpreter
from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from db_fixtures import HOST_DEVICE, db_url, sqlite_url  # noqa: F401  (fixtures)
from latency_db.devices import get_device, host_id, list_devices, lookup_device, device_rows
from latency_db.exchange import export_table, import_table
from latency_db.lut import build_lut, plan_build
from latency_db.calibrate import calibrate
from latency_db.measure import measure_arch, measure_many
from latency_db.measurements import taken_under
from latency_db.predictor import LutPredictor, MissingKeysError
from latency_db.query import query_latency
from latency_db.schema import Base, Calibration, Device, LatencyTable, LutEntry, Measurement
from latency_db.store import head_revision, open_store
from latency_db.tables import choose_table, current_table, resolve_target, table_versions

TARGET = ModelTarget(resolution=32, classes=4)
QUICK = RunSettings(num_runs=10, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0)
ARCH = "dwconv_k3_se0_noskip_w1_n1:mbconv3_k3_se0_id_w1_n2"
OTHER_ARCHS = ("mbconv3_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1",
               "dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_id_w1_n1")
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def snapshot(store) -> dict[str, list]:
    """Every row of every table, as text: what a read path must leave exactly as it was."""
    with store.engine.connect() as connection:
        return {table.name: sorted(tuple(map(str, row)) for row in connection.execute(select(table)))
                for table in Base.metadata.sorted_tables}


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


# --- this host's identity ------------------------------------------------------------------------------------

def test_the_host_identity_is_the_host_name_unless_set(monkeypatch):
    assert host_id() == "test-host"  # tests set AKD_TF_HOST_ID
    monkeypatch.delenv("AKD_TF_HOST_ID")
    assert host_id() == socket.gethostname()
    for bad in ("", "two words", "a@b", "x" * 123):
        monkeypatch.setenv("AKD_TF_HOST_ID", bad)
        with pytest.raises(ValueError, match=r"^AKD_TF_HOST_ID must be 1 to 122 characters without spaces or '@', "
                                             rf"got {re.escape(repr(bad))}$"):
            host_id()


# --- two hosts on one database; reads never write -------------------------------------------------------------

def test_two_hosts_on_one_database_keep_apart_and_reads_never_write(db_url, tiny_space, monkeypatch):  # noqa: F811
    store = open_store(db_url)
    monkeypatch.setenv("AKD_TF_HOST_ID", "host-a")
    built_a = build_lut(store, "local", tiny_space, TARGET, settings=QUICK)
    arch = tiny_space.parse(ARCH)
    measured = measure_arch(store, "local", arch, TARGET, settings=QUICK)
    with store.session() as session:
        row_a = {c.name: getattr(get_device(session, "local@host-a"), c.name) for c in Device.__table__.columns}
    monkeypatch.setenv("AKD_TF_HOST_ID", "host-b")
    built_b = build_lut(store, "local", tiny_space, TARGET, settings=QUICK, limit=2)  # b's own table, 2 keys

    assert (built_a.table_id, built_a.measured, built_b.table_id, built_b.measured, built_b.already_stored) == (
        1, 8, 2, 2, 0)  # host-a's 8 entries count for nothing on host-b
    with store.session() as session:
        assert [(d.name, d.kind) for d in list_devices(session)] == [("local@host-a", "local"),
                                                                     ("local@host-b", "local")]
        assert {c.name: getattr(get_device(session, "local@host-a"), c.name)
                for c in Device.__table__.columns} == row_a  # host-b's work left host-a's row alone
        tables = session.execute(select(LatencyTable.id, Device.name, func.count(LutEntry.id)).join(Device)
                                 .join(LutEntry).group_by(LatencyTable.id, Device.name).order_by(LatencyTable.id)).all()
        assert [tuple(t) for t in tables] == [(1, "local@host-a", 8), (2, "local@host-b", 2)]
    with pytest.raises(MissingKeysError, match=r"missing on device 'local' in table #2 \(none\)"):
        LutPredictor.load(store, "local", tiny_space, TARGET).predict_ms(arch)  # b sees only its own 2 keys
    [estimate] = query_latency(store, "local@host-a", tiny_space, [arch], TARGET)  # a's, read by name from b
    assert (estimate.source, estimate.latency_ms) == ("measured", measured.min_us / 1000)
    refused = cli("latency", "measure", "--device", "local@host-a", "--space", tiny_space.name, "--arch", ARCH,
                  "--resolution", "32", "--classes", "4", "--db", db_url)
    assert refused.exit_code == 1 and refused.output == (
        "Error: device 'local@host-a' is another host's CPU (this host is local@host-b); measure it on that host, "
        "or use --device local\n")

    before = snapshot(store)
    for host in ("host-a", "host-b", "host-c"):  # host-c has no row: reading as it must not make one
        monkeypatch.setenv("AKD_TF_HOST_ID", host)
        with store.session() as session:
            assert lookup_device(session, "local") is None if host == "host-c" else get_device(session, "local")
            list_devices(session)
            device = get_device(session, "local@host-a")
            assert current_table(session, device, tiny_space, "none").id == 1
            assert choose_table(session, "local@host-a", tiny_space, TARGET).id == 1
        device_rows(store)
        table_versions(store)
        plan_build(store, "local", tiny_space, TARGET)
        export_table(store, "local@host-a", "json")
        assert resolve_target(store, "local@host-a", tiny_space) == TARGET
        assert LutPredictor.load(store, "local@host-a", tiny_space, TARGET).table_id == 1
        query_latency(store, "local@host-a", tiny_space, tiny_space.sample_many(3, 1) + [arch], TARGET)
        target = ["--space", tiny_space.name, "--db", db_url]
        assert cli("latency", "query", "--arch", ARCH, "--device", "local@host-a", *target).exit_code == 0
        assert cli("latency", "query", "--arch", ARCH, *target).exit_code == (0 if host == "host-a" else 1)
        assert cli("latency", "list", "--db", db_url).exit_code == 0
        assert cli("devices", "list", "--db", db_url).exit_code == 0
        assert cli("latency", "build-lut", "--dry-run", "--resolution", "32", "--classes", "4", *target).exit_code == 0
        assert cli("latency", "export", "--device", "local@host-a", "--out", "-", "--db", db_url).exit_code == 0
        assert snapshot(store) == before, host
    store.close()


# --- a new version when what changes latency changes ----------------------------------------------------------

@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")  # the upgrade's interpreter
def test_an_upgrade_starts_a_new_table_version(db_url, tiny_space, monkeypatch, tmp_path):  # noqa: F811
    store = open_store(db_url)
    first = build_lut(store, "local", tiny_space, TARGET, settings=QUICK)
    runtime = load_interpreter().label
    with store.session() as session:  # an accepted calibration of version 1
        session.add(Calibration(table_id=first.table_id, space=tiny_space.name, resolution=32, channels=3, classes=4,
                                scale=2.0, ms_per_weight_mb=0.0, offset_ms=0.0, n_fit=15, n_holdout=15,
                                within_5_pct=0.0, within_10_pct=0.0, rmspe=1.0, raw_rmspe=2.0, kendall_tau=0.0))
    arch = tiny_space.parse(ARCH)
    monkeypatch.setenv("AKD_TF_INTERPRETER", "tensorflow")  # the upgrade: another interpreter measures here
    load_interpreter.cache_clear()
    try:
        upgraded = load_interpreter().label
        second = build_lut(store, "local", tiny_space, TARGET, settings=QUICK, limit=2)
        assert (second.table_id, second.already_stored, second.measured) == (2, 0, 2)
        with store.session() as session:
            settings = session.scalars(select(LutEntry.settings).where(LutEntry.table_id == 2)).all()
            assert {s["runtime"] for s in settings} == {upgraded} != {runtime}
        new = LutPredictor.load(store, "local", tiny_space, TARGET)  # reads the new version only
        assert (new.table_id, len(new.table_us), new.calibration) == (2, 2, None)
        with pytest.raises(MissingKeysError, match=r"^2 latency-table key\(s\) missing on device 'local' in table #2"):
            new.predict_ms(arch)
        old = LutPredictor.load(store, "local", tiny_space, TARGET, table_id=1)  # chosen: the old one, calibrated
        assert (len(old.table_us), old.calibration.scale) == (8, 2.0)
        assert old.predict_ms(arch) == pytest.approx(2.0 * old.lut_sum_us(arch) / 1000)

        build_lut(store, "local", tiny_space, TARGET, settings=replace(QUICK, num_threads=2), limit=1)
        edited = replace(tiny_space, head_filters=64)  # the space's definition edited under the same name
        build_lut(store, "local", edited, TARGET, settings=QUICK, limit=1)
        assert LutPredictor.load(store, "local", edited, TARGET).table_id == 4
        assert LutPredictor.load(store, "local", tiny_space, TARGET).table_id == 2  # 1 thread, this runtime

        one_thread, two_threads = (tiny_space.parse(text) for text in OTHER_ARCHS)  # measured whole, under the upgrade
        measure_arch(store, "local", one_thread, TARGET, settings=QUICK)
        measure_arch(store, "local", two_threads, TARGET, settings=replace(QUICK, num_threads=2))

        versions = table_versions(store)
        for row in versions:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row.pop("built"))
        common = {"device": HOST_DEVICE, "quantization": "none"}
        assert versions == [
            {"table": 1, **common, "space": f"lut-test@{tiny_space.version}", "runtime": runtime, "threads": 1,
             "shapes": "32x32x3 with 4 classes", "entries": 8, "measured": 0, "calibrations": 1, "current": False},
            {"table": 2, **common, "space": f"lut-test@{tiny_space.version}", "runtime": upgraded, "threads": 1,
             "shapes": "32x32x3, no head", "entries": 2, "measured": 1, "calibrations": 0, "current": True},
            {"table": 3, **common, "space": f"lut-test@{tiny_space.version}", "runtime": upgraded, "threads": 2,
             "shapes": "32x32x3, no head", "entries": 1, "measured": 1, "calibrations": 0, "current": True},
            # a model row names its space's version too: the edited definition's version does not count the
            # architecture measured under the old one (same name, same tokens, another network)
            {"table": 4, **common, "space": f"lut-test@{edited.version}", "runtime": upgraded, "threads": 1,
             "shapes": "32x32x3, no head", "entries": 1, "measured": 0, "calibrations": 0, "current": False}]
        listing = cli("latency", "list", "--db", db_url).output.splitlines()
        assert listing[0].split() == ["table", "device", "space", "runtime", "threads", "quantization", "shapes",
                                      "entries", "measured", "calibrations", "built", "current"]
        assert [line.endswith("*") for line in listing[2:]] == [False, True, True, False]

        query = ["latency", "query", "--arch", ARCH, "--space", tiny_space.name, "--db", db_url]
        chosen = cli(*query, "--table", "1", "--json")
        assert chosen.exit_code == 0, chosen.output
        [record] = json.loads(chosen.output)
        assert record["detail"].startswith("calibration #1 of table #1: LUT sum x 2.0000 + ")
        assert (record["source"], record["predictor"]) == ("predicted", "calibration #1")
        listed = "; ".join(f"#{row['table']} {row['space']}, {row['runtime']}, {row['threads']} "
                           f"thread{'s' if row['threads'] > 1 else ''}, none ({row['entries']} entries)"
                           for row in versions)
        missing = cli(*query, "--table", "9")
        assert missing.exit_code == 1 and missing.output == (
            f"Error: device 'local' ({HOST_DEVICE}) has no latency table #9; its tables: {listed}\n")
        with pytest.raises(ValueError, match=f"^{re.escape(missing.output[len('Error: '):-1])}$"):
            export_table(store, "local", "json", table_id=9)
        int8 = cli(*query, "--table", "1", "--quantize", "int8")
        assert int8.exit_code == 1 and int8.output == "Error: latency table #1 holds none latencies, not int8\n"
        mnasnet_arch = get_space("mnasnet").sample_many(1, 0)[0].to_string()
        other_space = cli("latency", "query", "--arch", mnasnet_arch, "--table", "1", "--db", db_url)
        assert other_space.exit_code == 1 and other_space.output == (
            "Error: latency table #1 is for space 'lut-test', not 'mnasnet'\n")
        no_space = cli("latency", "query", "--arch", mnasnet_arch, "--resolution", "32", "--classes", "4", "--db",
                       db_url)
        assert no_space.exit_code == 1 and no_space.output == (
            f"Error: device 'local' ({HOST_DEVICE}) has no latency table for mnasnet@{get_space('mnasnet').version}, "
            f"{upgraded}, 1 thread, none; its tables: {listed}; choose one with --table ID or build it with: akd-tf "
            f"latency build-lut --device local --space mnasnet --resolution 32 --channels 3 --classes 4 "
            f"--quantize none\n")

        for fmt in ("json", "csv"):  # a shared table keeps its versions apart
            path = tmp_path / f"tables.{fmt}"
            path.write_text(export_table(store, "local", fmt))
            other = open_store(f"sqlite:///{tmp_path / f'other-{fmt}.db'}")
            assert import_table(other, path, "teammate") == (12, 0)
            assert import_table(other, path, "teammate") == (0, 12)
            assert [(r["space"], r["runtime"], r["threads"], r["entries"]) for r in table_versions(other)] == [
                (r["space"], r["runtime"], r["threads"], r["entries"]) for r in versions]
            other.close()
        one = json.loads(export_table(store, "local", "json", table_id=3))["tables"]
        assert [(t["threads"], len(t["entries"])) for t in one] == [(2, 1)]
    finally:
        monkeypatch.delenv("AKD_TF_INTERPRETER")
        load_interpreter.cache_clear()
    store.close()


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")  # the upgrade's interpreter
def test_calibrations_reuse_only_measurements_of_their_runtime(db_url, tiny_space, monkeypatch):  # noqa: F811
    store = open_store(db_url)
    arch = tiny_space.parse(ARCH)
    before = measure_many(store, "local", [arch], TARGET, settings=QUICK)[arch]
    assert measure_many(store, "local", [arch], TARGET, settings=QUICK)[arch].id == before.id  # reused
    monkeypatch.setenv("AKD_TF_INTERPRETER", "tensorflow")  # the upgrade
    load_interpreter.cache_clear()
    try:
        upgraded = measure_many(store, "local", [arch], TARGET, settings=QUICK)[arch]
        two_threads = measure_many(store, "local", [arch], TARGET, settings=replace(QUICK, num_threads=2))[arch]
        assert [taken_under(row.settings) for row in (before, upgraded, two_threads)] == [
            (1, runtime_before := before.settings["runtime"]), (1, load_interpreter().label),
            (2, load_interpreter().label)]
        assert runtime_before != load_interpreter().label
        assert measure_many(store, "local", [arch], TARGET, settings=QUICK)[arch].id == upgraded.id
        [answer] = query_latency(store, "local", tiny_space, [arch], TARGET)  # a query answers from the same one
        assert (answer.source, answer.detail.split(" (")[0]) == ("measured", f"measurement #{upgraded.id}")
        with store.session() as session:  # a version measured before the upgrade can no longer be calibrated
            old = LatencyTable(device_id=before.device_id, space=tiny_space.name, space_version=tiny_space.version,
                               quantization="none", threads=1, runtime=runtime_before)
            session.add(old)
            session.flush()
            old_id = old.id
        space = f"lut-test@{tiny_space.version}"
        refusal = (f"latency table #{old_id} is {space}, {runtime_before}, 1 thread, none, but device 'local' "
                   f"measures as {space}, {load_interpreter().label}, 1 thread, none now: a calibration is fitted on "
                   f"measurements of its own table version's runtime and threads; calibrate the current version "
                   f"(leave out --table)")
        with pytest.raises(ValueError, match=f"^{re.escape(refusal)}$"):
            calibrate(store, "local", tiny_space, TARGET, 30, holdout=10, settings=QUICK, table_id=old_id)
    finally:
        monkeypatch.delenv("AKD_TF_INTERPRETER")
        load_interpreter.cache_clear()
    assert measure_many(store, "local", [arch], TARGET, settings=QUICK)[arch].id == before.id  # its own again
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 3
    store.close()


def test_an_empty_version_and_an_unknown_device_are_one_line_errors(sqlite_url, tiny_space):  # noqa: F811
    from latency_db.devices import host_device
    from latency_db.tables import TableIdentity, ensure_table

    store = open_store(sqlite_url)
    identity = TableIdentity(tiny_space.name, tiny_space.version, "none", 1, load_interpreter().label)
    with store.session() as session:  # what a build interrupted before its first entry leaves
        ensure_table(session, host_device(session), identity)
    query = ["latency", "query", "--arch", ARCH, "--space", tiny_space.name, "--db", sqlite_url]
    empty = cli(*query, "--resolution", "32", "--classes", "4")
    assert empty.exit_code == 1 and empty.output == (
        f"Error: latency table #1 of device 'local' (lut-test@{tiny_space.version}, {load_interpreter().label}, "
        f"1 thread, none) has no entries yet; build them with: akd-tf latency build-lut --device local --space "
        f"lut-test --resolution 32 --channels 3 --classes 4 --quantize none\n")
    unknown = cli(*query, "--device", "pixel-9")
    assert unknown.exit_code == 1
    assert unknown.output == f"Error: unknown device 'pixel-9'; known devices: {HOST_DEVICE}\n"
    store.close()


def test_version_1_files_are_refused(tmp_path, sqlite_url):  # noqa: F811
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "akd-tf-lut", "version": 1, "device": {"name": "px"}, "entries": []}))
    with pytest.raises(ValueError, match=r"old.json: version 1 files name no table version \(runtime, threads, "
                                         r"space version\), so their entries cannot be told apart"):
        import_table(open_store(sqlite_url), path)


# --- the migration --------------------------------------------------------------------------------------------

OLD_ENTRIES = sa.table("lut_entries", *[sa.column(c) for c in (
    "device_id", "key", "quantization", "median_us", "mean_us", "std_us", "min_us", "p90_us", "count")],
    sa.column("settings", sa.JSON), sa.column("measured_at", sa.DateTime(timezone=True)))
OLD_CALIBRATIONS = sa.table("calibrations", *[sa.column(c) for c in (
    "device_id", "space", "resolution", "channels", "classes", "quantization", "scale", "offset_ms", "n_fit",
    "n_holdout", "within_5_pct", "within_10_pct", "rmspe", "kendall_tau")],
    sa.column("created_at", sa.DateTime(timezone=True)))
OLD_JOBS = sa.table("jobs", *[sa.column(c) for c in ("run_key", "kind", "device_id", "pool", "state",
                                                     "model_sha256")],
                    sa.column("payload", sa.JSON), sa.column("settings", sa.JSON),
                    sa.column("created_at", sa.DateTime(timezone=True)),
                    sa.column("updated_at", sa.DateTime(timezone=True)))


def test_migration_0009_sorts_old_entries_into_legacy_versions(db_url, tiny_space):  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = open_store(db_url, upgrade=False)
    store.upgrade("0008")
    old = {"num_threads": 1, "runtime": "ai-edge-litert 2.2.0"}
    new = {"num_threads": 1, "runtime": "ai-edge-litert 2.3.0"}
    with store.engine.begin() as connection:
        devices = sa.table("devices", sa.column("name"), sa.column("kind"), sa.column("status"), sa.column("model"),
                           sa.column("created_at", sa.DateTime(timezone=True)))
        for name, kind, model in (("local", "local", None), ("px", "adb", "Pixel 7")):  # ids 1 and 2
            connection.execute(sa.insert(devices).values(name=name, kind=kind, status="online", model=model,
                                                         created_at=T0))
        stats = dict(median_us=2.0, mean_us=2.0, std_us=0.0, min_us=1.0, p90_us=None, count=5)
        connection.execute(sa.insert(OLD_ENTRIES), [
            dict(device_id=device_id, key=key, quantization=quantization, settings=settings,
                 measured_at=T0 + timedelta(seconds=seconds), **stats)
            for device_id, key, quantization, settings, seconds in (
                (1, "k1", "none", old, 2), (1, "k2", "none", old, 1), (1, "k3", "none", new, 3),
                (1, "k1", "int8", old, 4), (2, "k1", "none", {"imported_from": "x.json"}, 5))])
        fit = dict(space="mnasnet", resolution=32, channels=3, classes=10, scale=1.0, offset_ms=0.0, n_fit=15,
                   n_holdout=15, within_5_pct=0.5, within_10_pct=0.5, rmspe=9.0, kendall_tau=0.5, created_at=T0)
        connection.execute(sa.insert(OLD_CALIBRATIONS), [dict(device_id=1, quantization="none", **fit),
                                                         dict(device_id=2, quantization="int8", **fit)])
        connection.execute(text("INSERT INTO job_models (sha256, size_bytes, created_at) VALUES ('ab', 1, :t)"),
                           {"t": T0})
        connection.execute(sa.insert(OLD_JOBS), [
            dict(run_key=key, kind="lut", device_id=2, pool="Pixel 7", state=state, model_sha256="ab",
                 payload={"key": key, "quantization": "none"}, settings={}, created_at=T0, updated_at=T0)
            for key, state in (("queued", "queued"), ("leased", "leased"), ("done", "done"))])
    store.upgrade()

    with store.session() as session:
        assert [(d.id, d.name) for d in session.scalars(select(Device).order_by(Device.id))] == [
            (1, "local@legacy"), (2, "px")]
        tables = [(t.id, t.device_id, t.space, t.space_version, t.quantization, t.threads, t.runtime,
                   t.created_at.replace(tzinfo=timezone.utc) if t.created_at.tzinfo is None else t.created_at)
                  for t in session.scalars(select(LatencyTable).order_by(LatencyTable.id))]
        assert tables == [
            (1, 1, "unknown", "legacy", "none", 1, "ai-edge-litert 2.2.0", T0 + timedelta(seconds=1)),
            (2, 1, "unknown", "legacy", "none", 1, "ai-edge-litert 2.3.0", T0 + timedelta(seconds=3)),
            (3, 1, "unknown", "legacy", "int8", 1, "ai-edge-litert 2.2.0", T0 + timedelta(seconds=4)),
            (4, 2, "unknown", "legacy", "none", 1, "unknown", T0 + timedelta(seconds=5)),
            (5, 2, "unknown", "legacy", "int8", 1, "unknown", tables[4][7])]  # made for px's int8 calibration
        assert sorted(session.execute(select(LutEntry.table_id, LutEntry.key)).all()) == [
            (1, "k1"), (1, "k2"), (2, "k3"), (3, "k1"), (4, "k1")]
        assert sorted(session.execute(select(Calibration.table_id, Calibration.space)).all()) == [
            (1, "mnasnet"), (5, "mnasnet")]  # local's: the none table with the most entries
        jobs = {row.run_key: (row.state, row.error) for row in session.execute(text("SELECT run_key, state, error "
                                                                                    "FROM jobs"))}
        assert jobs["done"] == ("done", None) and jobs["queued"] == jobs["leased"]
        assert jobs["queued"][0] == "failed" and jobs["queued"][1].startswith("failed by migration 0009: ")
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                Base.metadata) == []
    rows = cli("latency", "list", "--json", "--db", db_url)  # legacy versions are listed, never current
    assert [(r["table"], r["space"], r["current"]) for r in json.loads(rows.output)] == [
        (1, "unknown@legacy", False), (2, "unknown@legacy", False), (3, "unknown@legacy", False),
        (4, "unknown@legacy", False), (5, "unknown@legacy", False)]
    query = cli("latency", "query", "--device", "local@legacy", "--table", "1", "--space", "lut-test", "--arch", ARCH,
                "--resolution", "32", "--classes", "4", "--db", db_url)  # read when chosen: it lacks the keys
    assert query.exit_code == 1, query.output
    assert re.match(
        r"Error: \d latency-table key\(s\) missing on device 'local@legacy' in table #1 \(none\) at 32x32x3 with 4 "
        r"classes: stem-", query.output)

    with pytest.raises(ValueError, match=r"^cannot downgrade below revision 0009: 1 key\(s\) are stored in several "
                                         r"table versions of one device \(e.g. 'k1' on device id 1\)"):
        with store.session() as session:  # k1 (none) in versions 1 and 2 of local@legacy: 0008 cannot hold it
            session.add(LutEntry(table_id=2, key="k1", settings={}, **stats))
        store.downgrade("0008")
    with store.session() as session:
        session.execute(sa.delete(LutEntry).where(LutEntry.table_id == 2, LutEntry.key == "k1"))
    store.downgrade("0008")
    with store.engine.connect() as connection:
        assert sorted(tuple(r) for r in connection.execute(text(
            "SELECT d.name, e.key, e.quantization FROM lut_entries e JOIN devices d ON d.id = e.device_id"))) == [
            ("local", "k1", "int8"), ("local", "k1", "none"), ("local", "k2", "none"), ("local", "k3", "none"),
            ("px", "k1", "none")]
        assert sorted(tuple(r) for r in connection.execute(text(
            "SELECT device_id, quantization FROM calibrations"))) == [(1, "none"), (2, "int8")]
    assert "latency_tables" not in inspect(store.engine).get_table_names()
    store.upgrade()
    assert store.revision() == head_revision()
    store.close()


# --- model rows carry their space's version (migration 0016) ------------------------------------------------------

def test_migration_0016_keeps_every_measurement_and_old_models_are_no_current_version_s(db_url, tiny_space):  # noqa: F811,E501
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from latency_db.measurements import latest_measurement
    from latency_db.store import _alembic_config

    store = open_store(db_url, upgrade=False)
    store.upgrade("0015")
    models = sa.table("models", *[sa.column(c) for c in ("space", "arch", "resolution", "channels", "classes",
                                                         "quantization", "macs", "params", "sha256")])
    with store.engine.begin() as connection:
        connection.execute(sa.insert(sa.table("devices", sa.column("name"), sa.column("kind"), sa.column("status"),
                                              sa.column("created_at", sa.DateTime(timezone=True)))),
                           [dict(name=HOST_DEVICE, kind="local", status="online", created_at=T0)])
        shape = dict(resolution=32, channels=3, classes=4, quantization="none", macs=10, params=20, sha256="ab")
        connection.execute(sa.insert(models), [dict(space="lut-test", arch=ARCH, **shape),
                                               dict(space="carved", arch="0123456789ab:fedcba9876543210", **shape)])
    stats = dict(median_us=2.0, mean_us=2.0, std_us=0.0, min_us=1.0, p90_us=None, count=5, init_us=1.0,
                 first_inference_us=3.0, warmup_mean_us=None, max_us=4.0, raw_output="", started_at=T0, finished_at=T0,
                 settings={"num_threads": 1, "runtime": load_interpreter().label})
    with store.session() as session:  # measurements is the same at 0015 and 0016
        session.add_all([Measurement(run_key=f"m{i}", device_id=1, model_id=model_id, **stats)
                         for i, model_id in enumerate((1, 1, 2))])

    if db_url.startswith("sqlite"):  # run with foreign keys on, the recreated table would take its measurements
        with store.engine.begin() as connection, pytest.raises(RuntimeError, match="would delete every measurement"):
            command.upgrade(_alembic_config(connection), "0016")
    store.upgrade()
    with store.session() as session:
        assert sorted(session.execute(select(Measurement.run_key, Measurement.model_id)).all()) == [
            ("m0", 1), ("m1", 1), ("m2", 2)]
        assert session.execute(text("SELECT id, space, space_version FROM models ORDER BY id")).all() == [
            (1, "lut-test", "legacy"), (2, "carved", "")]
        device = session.get(Device, 1)
        arch = tiny_space.parse(ARCH)
        runtime = load_interpreter().label
        assert latest_measurement(session, device, arch, TARGET, runtime=runtime, num_threads=1) is None
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                Base.metadata) == []

    measured = measure_arch(store, "local", arch, TARGET, settings=QUICK)  # the current definition's own model
    with store.session() as session:
        assert session.execute(text("SELECT id, space_version FROM models WHERE space = 'lut-test' ORDER BY id")
                               ).all() == [(1, "legacy"), (measured.model_id, tiny_space.version)]
        assert latest_measurement(session, session.get(Device, 1), arch, TARGET, runtime=runtime,
                                  num_threads=QUICK.num_threads).id == measured.id
    with pytest.raises(ValueError, match=rf"^cannot downgrade below revision 0016: architecture '{re.escape(ARCH)}' "
                                         r"of space 'lut-test' has models of more than one space version"):
        store.downgrade("0015")
    with store.session() as session:
        session.delete(session.get(Measurement, measured.id))
        session.execute(text(f"DELETE FROM models WHERE id = {int(measured.model_id)}"))
    store.downgrade("0015")
    with store.session() as session:
        assert sorted(session.execute(select(Measurement.run_key, Measurement.model_id)).all()) == [
            ("m0", 1), ("m1", 1), ("m2", 2)]
    store.close()
