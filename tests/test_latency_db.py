import json
import re
import multiprocessing

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select

from akd_tf.benchmark import RunSettings
from akd_tf.cli import main
from akd_tf.interpreter import load_interpreter
from akd_tf.space import get_space
from db_fixtures import HOST_DEVICE, db_url, sqlite_url  # noqa: F401  (fixtures)
from latency_db.calibrate import calibrate
from latency_db.config import mask_url, resolve_url
from latency_db.exchange import export_table, import_table
from latency_db.lut import build_lut, plan_build
from akd_tf.target import ModelTarget
from latency_db.measure import measure_arch
from latency_db.accuracy import PredictionAccuracy, kendall_tau, prediction_accuracy, spearman_rho
from latency_db.corrections import Region, fit_linear
from latency_db.features import FEATURE_NAMES
from latency_db.predictor import LutPredictor, MissingKeysError
from latency_db.query import query_latency
from latency_db.schema import Calibration, Device, LatencyTable, LutEntry, Measurement, TFLiteModel
from latency_db.store import head_revision, open_store

TARGET = ModelTarget(resolution=32, classes=4)
RUNTIME = load_interpreter().label  # this host's runtime, as tables record it
QUICK = RunSettings(num_runs=10, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0)


# --- configuration -------------------------------------------------------------------------------------------

def test_url_resolution_and_masking(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert resolve_url() == f"sqlite:///{tmp_path}/akd-tf/latency.db"
    monkeypatch.setenv("AKD_TF_DB", "sqlite:///from-env.db")
    assert resolve_url() == "sqlite:///from-env.db"
    assert resolve_url("sqlite:///explicit.db") == "sqlite:///explicit.db"
    assert mask_url("postgresql+psycopg://farm:s3cret@db.example:5432/lat") == \
        "postgresql+psycopg://farm:***@db.example:5432/lat"
    with pytest.raises(ValueError, match="not a database URL: 'nonsense'"):
        resolve_url("nonsense")


def test_unreachable_database_is_one_line_without_password():
    with pytest.raises(ValueError) as err:
        open_store("postgresql+psycopg://farm:s3cret@127.0.0.1:9/lat")
    message = str(err.value)
    assert message.startswith("cannot open the latency database postgresql+psycopg://farm:***@127.0.0.1:9/lat: ")
    assert "s3cret" not in message and "\n" not in message


# --- schema and migrations, on SQLite and PostgreSQL --------------------------------------------------------

def test_migrations_up_down_up(db_url):  # noqa: F811
    def calibration_columns():
        return {c["name"] for c in inspect(store.engine).get_columns("calibrations")}

    def measurement_columns():
        return {c["name"] for c in inspect(store.engine).get_columns("measurements")}

    def trial_columns():
        return {c["name"] for c in inspect(store.engine).get_columns("trials")}

    def column_type(table, name):
        return next(str(c["type"]) for c in inspect(store.engine).get_columns(table) if c["name"] == name)

    store = open_store(db_url)
    assert store.revision() == head_revision() == "0016"  # 0012 follows 0014 and 0013, which were merged first
    assert {"network", "reused_from", "attempt_failures"} <= trial_columns()
    tables = set(inspect(store.engine).get_table_names())
    assert {"devices", "models", "measurements", "latency_tables", "lut_entries", "calibrations", "jobs",
            "search_runs", "trials", "kernel_models"} <= tables
    assert {"ms_per_weight_mb", "method", "model", "region", "measuring_s"} <= calibration_columns()
    assert {"cpu_before", "cpu_after", "thermal_before"} <= measurement_columns()
    wide = "BIGINT" if db_url.startswith("postgresql") else "INTEGER"  # SQLite's INTEGER holds 64 bits already
    assert column_type("models", "macs") == column_type("job_models", "size_bytes") == wide
    assert "space_version" in {c["name"] for c in inspect(store.engine).get_columns("models")}
    store.downgrade("0015")
    assert "space_version" not in {c["name"] for c in inspect(store.engine).get_columns("models")}
    store.downgrade("0012")
    assert column_type("models", "macs") == column_type("models", "params") == "INTEGER"
    store.downgrade("0014")
    assert "attempt_failures" not in trial_columns() and {"network", "reused_from"} <= trial_columns()
    store.downgrade("0013")
    assert "kernel_models" not in inspect(store.engine).get_table_names()
    assert "ix_trials_network" in {i["name"] for i in inspect(store.engine).get_indexes("trials")}
    store.downgrade("0011")
    assert not {"network", "reused_from"} & trial_columns() and "attempts" in trial_columns()
    store.downgrade("0010")
    assert not {"cpu_before", "cpu_after"} & measurement_columns() and "thermal_before" in measurement_columns()
    store.downgrade("0009")
    assert "method" not in calibration_columns() and "ms_per_weight_mb" in calibration_columns()
    store.downgrade("0001")
    assert store.revision() == "0001" and "ms_per_weight_mb" not in calibration_columns()
    store.downgrade("base")
    assert store.revision() is None
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    store.upgrade()
    assert store.revision() == "0016" and "ms_per_weight_mb" in calibration_columns()
    assert {"cpu_before", "cpu_after"} <= measurement_columns()
    assert {"network", "reused_from", "attempt_failures"} <= trial_columns()
    assert "kernel_models" in inspect(store.engine).get_table_names()
    store.close()


def test_models_and_migrations_agree(db_url):  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from latency_db.schema import Base

    store = open_store(db_url)
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    store.close()


def test_a_model_past_two_billion_macs_is_stored_exactly(db_url):  # noqa: F811
    # ResNet50 at 224x224 has 4.1e9 MACs: PostgreSQL refused it when the column was a 32-bit INTEGER
    store = open_store(db_url)
    macs = 2**32 + 7
    with store.session() as session:
        session.add(TFLiteModel(space="keras-app", space_version="", arch="resnet50", resolution=224, channels=3,
                                classes=1000, quantization="none", macs=macs, params=2**31 + 3, sha256=""))
    with store.session() as session:
        row = session.scalar(select(TFLiteModel))
        assert (row.macs, row.params) == (macs, 2**31 + 3)
    store.close()


def test_unique_constraints_make_retries_idempotent(db_url, tiny_space):  # noqa: F811
    store = open_store(db_url)
    arch = tiny_space.sample_many(1, 0)[0]
    first = measure_arch(store, "local", arch, TARGET, settings=QUICK, run_key="retry-1")
    again = measure_arch(store, "local", arch, TARGET, settings=QUICK, run_key="retry-1")
    assert again.id == first.id
    other = measure_arch(store, "local", arch, TARGET, settings=QUICK)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 2
        assert session.scalar(select(func.count()).select_from(TFLiteModel)) == 1
    assert other.model_id == first.model_id
    store.close()


# --- lookup table, prediction, calibration ------------------------------------------------------------------

@pytest.fixture
def lut_store(db_url, tiny_space):  # noqa: F811
    store = open_store(db_url)
    summary = build_lut(store, "local", tiny_space, TARGET, settings=QUICK)
    assert (summary.total, summary.already_stored, summary.measured) == (8, 0, 8)
    yield store
    store.close()


def test_lut_build_is_resumable(lut_store, tiny_space):
    again = build_lut(lut_store, "local", tiny_space, TARGET, settings=QUICK)
    assert (again.total, again.already_stored, again.measured, again.table_id) == (8, 8, 0, 1)
    plan = plan_build(lut_store, "local", tiny_space, TARGET)
    assert len(plan.operators) == 8 and plan.missing == [] and plan.table_id == 1
    with lut_store.session() as session:
        rows = session.scalars(select(LutEntry)).all()
    assert len(rows) == 8 and all(r.count == 10 and r.median_us > 0 for r in rows)


def test_prediction_is_the_sum_of_the_arch_operators(lut_store, tiny_space):
    from akd_tf.plan import plan_network

    with lut_store.session() as session:
        table = dict(session.execute(select(LutEntry.key, LutEntry.min_us)).all())  # the latency: the minimum
    predictor = LutPredictor.load(lut_store, "local", tiny_space, TARGET)
    for arch in tiny_space.sample_many(10, 1):
        expected = sum(table[op.key] for op in plan_network(arch, (32, 32, 3), 4).operators)
        assert predictor.lut_sum_us(arch) == pytest.approx(expected, rel=1e-12)
        assert predictor.predict_ms(arch) == pytest.approx(expected / 1000, rel=1e-12)  # uncalibrated


def test_query_prefers_measurements_and_says_which_predictor_answered(lut_store, tiny_space):
    archs = tiny_space.sample_many(3, 5)
    measured = measure_arch(lut_store, "local", archs[0], TARGET, settings=QUICK)
    estimates = query_latency(lut_store, "local", tiny_space, archs, TARGET)
    assert [e.source for e in estimates] == ["measured", "predicted", "predicted"]
    assert (estimates[0].latency_ms, estimates[0].predictor) == (measured.min_us / 1000, "")
    assert (estimates[1].detail, estimates[1].predictor, estimates[1].outside_region) == \
        ("uncalibrated LUT sum of table #1", "raw LUT sum of table #1", "")

    predictor = LutPredictor.load(lut_store, "local", tiny_space, TARGET)
    features = predictor.features(archs[2])
    lut_ms, weight_mb = features[0], features[1]
    with lut_store.session() as session:  # an accepted linear correction, with coefficients known here
        known = Calibration(table_id=1, space=tiny_space.name, resolution=32, channels=3, classes=4, scale=1.25,
                            ms_per_weight_mb=0.5, offset_ms=0.1, n_fit=15,
                            n_holdout=15, within_5_pct=0.0, within_10_pct=0.5, rmspe=10.0, raw_rmspe=20.0,
                            kendall_tau=0.0, accepted=True,
                            region=Region(tuple(features * 2), tuple(features * 3)).to_dict())
        session.add(known)
        session.flush()
        known_id = known.id
    predictor = LutPredictor.load(lut_store, "local", tiny_space, TARGET)
    assert predictor.calibration.id == known_id
    assert lut_ms == pytest.approx(predictor.lut_sum_us(archs[2]) / 1000, rel=1e-12)
    after = query_latency(lut_store, "local", tiny_space, archs, TARGET)
    assert after[2].latency_ms == pytest.approx(1.25 * lut_ms + 0.5 * weight_mb + 0.1)
    assert after[2].predictor == f"calibration #{known_id}"
    assert after[2].detail == (f"calibration #{known_id} of table #1: LUT sum x 1.2500 + 0.5000 ms/MB weights "
                               f"+ 0.1000 ms (50% within +-10% on 15 held-out archs)")
    # the arch's features are half the fitted region's low end: every one is flagged, with the fitted range
    flags = after[2].outside_region.split("; ")
    assert [flag.split(" ")[0] for flag in flags] == list(FEATURE_NAMES)
    assert flags[0] == f"lut_ms {lut_ms:.4g} outside fitted {2 * lut_ms:.4g}..{3 * lut_ms:.4g}"
    shown = CliRunner().invoke(main, ["latency", "query", "--arch", archs[2].to_string(), "--space", tiny_space.name,
                                      "--db", str(lut_store.url)])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        f"{after[2].latency_ms:9.3f} ms  predicted  {archs[2].to_string()}  [{after[2].detail}]",
        f"{'':12}  outside the calibration's region, an extrapolation: {after[2].outside_region}"]
    refused = CliRunner().invoke(main, ["latency", "calibrate", "--n", "29", "--db", str(lut_store.url)])
    assert refused.exit_code == 2 and "Invalid value for '--n': needs at least 30 archs, got 29" in refused.output


def test_calibrate_fits_both_methods_uses_the_best_and_resumes_after_an_interruption(lut_store, tiny_space):
    from akd_tf.canonical import canonical_arch
    from latency_db.calibrate import calibration_archs, chosen_method

    seen = []

    def interrupt_after_12(arch):
        seen.append(arch)
        if len(seen) == 12:
            raise KeyboardInterrupt  # as Ctrl-C would, mid-calibration

    with pytest.raises(KeyboardInterrupt):
        calibrate(lut_store, "local", tiny_space, TARGET, 30, holdout=10, seed=2, settings=QUICK,
                  progress=interrupt_after_12)
    with lut_store.session() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 12
        assert session.scalar(select(func.count()).select_from(Calibration)) == 0

    used = []  # the archs the calibration fitted and held out, measured or found stored
    report = calibrate(lut_store, "local", tiny_space, TARGET, 30, holdout=10, seed=2, settings=QUICK,
                       progress=used.append)
    candidates, held_out = calibration_archs(tiny_space, 30, 10, 2)
    assert not set(candidates) & set(held_out)
    with lut_store.session() as session:
        # the 12 measured before the interruption were reused: no arch measured twice, and every network of the 40
        # archs measured (an arch whose network an earlier round measured under other tokens reuses that one)
        per_arch = dict(session.execute(select(TFLiteModel.arch, func.count()).join(Measurement)
                                        .group_by(TFLiteModel.arch)).all())
        assert set(per_arch.values()) == {1} and len(set(used)) == 40 and set(held_out) <= set(used)
        assert {canonical_arch(tiny_space.parse(arch)) for arch in per_arch} == {canonical_arch(a) for a in used}
        measured = sum(per_arch.values())
        rows = session.scalars(select(Calibration).order_by(Calibration.id)).all()
        assert [r.method for r in rows] == ["linear", "lightgbm"] == [m.method for m in report.methods]
        assert [(r.n_fit, r.n_holdout) for r in rows] == [(30, 10), (30, 10)]
        assert rows[0].scale is not None and rows[0].model is None and rows[0].library.startswith("numpy ")
        assert (rows[1].scale, rows[1].ms_per_weight_mb, rows[1].offset_ms) == (None, None, None)
        assert rows[1].model.startswith("tree") and rows[1].library.startswith("lightgbm ")
        assert all(r.region["features"] == list(FEATURE_NAMES) and r.raw_rmspe == report.uncalibrated.rmspe
                   for r in rows)
        assert [r.within_10_pct for r in rows] == [m.accuracy.within_10_pct for m in report.methods]
        winner = chosen_method(report.uncalibrated, {m.method: m.accuracy for m in report.methods})
        assert [r.accepted for r in rows] == [r.method == winner for r in rows]
    predictor = LutPredictor.load(lut_store, "local", tiny_space, TARGET)
    assert (predictor.calibration and predictor.calibration.method) == winner
    again = calibrate(lut_store, "local", tiny_space, TARGET, 30, holdout=10, seed=2, settings=QUICK)
    assert [m.accuracy for m in again.methods] == [m.accuracy for m in report.methods]  # same archs, same fits
    with lut_store.session() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == measured  # nothing measured again


def test_missing_keys_and_empty_tables_are_errors(db_url, tiny_space):  # noqa: F811
    store = open_store(db_url)
    with pytest.raises(ValueError, match=re.escape(
            f"device 'local' (local@test-host) has no latency table for lut-test@{tiny_space.version}, {RUNTIME}, "
            f"1 thread, none; it has none yet; build it with: akd-tf latency build-lut --device local --space "
            f"lut-test --resolution 32 --channels 3 --classes 4 --quantize none")):
        LutPredictor.load(store, "local", tiny_space, TARGET)
    build_lut(store, "local", tiny_space, TARGET, settings=QUICK, limit=2)  # stem and one dwconv only
    predictor = LutPredictor.load(store, "local", tiny_space, TARGET)
    arch = tiny_space.parse("mbconv3_k3_se0_id_w1_n2:mbconv3_k3_se0_id_w1_n1")
    with pytest.raises(MissingKeysError) as err:
        predictor.lut_sum_us(arch)
    assert err.value.keys == ["mbconv3-input:16x16x8-output:16-kernel:3-stride:2-se:0-noskip",
                              "mbconv3-input:8x8x16-output:16-kernel:3-stride:1-se:0-idskip",
                              "head-input:8x8x16-output:32-classes:4"]
    assert str(err.value) == (  # the keys, the shapes the table holds, how to build them
        "3 latency-table key(s) missing on device 'local' in table #1 (none) at 32x32x3 with 4 classes: "
        f"{', '.join(err.value.keys)}; table #1 holds 32x32x3, no head; build them with: akd-tf latency build-lut "
        "--device local --space lut-test --resolution 32 --channels 3 --classes 4 --quantize none")
    with pytest.raises(ValueError, match=f"^unknown device 'pixel9'; known devices: {HOST_DEVICE}$"):
        query_latency(store, "pixel9", tiny_space, [arch], TARGET)
    store.close()


# --- sharing tables -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_import_round_trip_is_idempotent(lut_store, tmp_path, fmt):
    path = tmp_path / f"table.{fmt}"
    path.write_text(export_table(lut_store, "local", fmt))
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    device = "local" if fmt == "json" else "teammate-phone"
    assert import_table(other, path, None if fmt == "json" else device) == (8, 0)
    assert import_table(other, path, None if fmt == "json" else device) == (0, 8)
    with lut_store.session() as s1, other.session() as s2:
        def rows(session):
            return sorted(session.execute(select(LutEntry.key, LutEntry.median_us, LutEntry.count)).all())
        assert rows(s1) == rows(s2)
    other.close()


def test_corrupt_import_writes_nothing(lut_store, tmp_path):
    good = json.loads(export_table(lut_store, "local", "json"))
    good["tables"][0]["entries"][5]["median_us"] = "fast"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(good))
    target = open_store(f"sqlite:///{tmp_path / 'target.db'}")
    with pytest.raises(ValueError, match=r"bad.json: table 1 entry 6: could not convert string to float: 'fast'"):
        import_table(target, bad)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"junk.json: not valid JSON"):
        import_table(target, tmp_path / "junk.json")
    (tmp_path / "t.csv").write_text("key,median_us\nx,1\n")
    with pytest.raises(ValueError, match=r"t.csv: CSV header must name space, space_version, quantization, "
                                         r"threads, runtime, key, median_us"):
        import_table(target, tmp_path / "t.csv", "local")
    with target.session() as session:
        assert session.scalar(select(func.count()).select_from(LutEntry)) == 0
    target.close()


# --- concurrency ---------------------------------------------------------------------------------------------

def _insert_entries(url: str, worker: int, n: int) -> None:
    from latency_db.devices import host_device
    from latency_db.schema import LutEntry
    from latency_db.store import open_store
    from latency_db.tables import TableIdentity, ensure_table

    store = open_store(url)
    with store.session() as session:
        table_id = ensure_table(session, host_device(session), TableIdentity("s", "v", "none", 1, "r")).id
    for i in range(n):
        with store.session() as session:
            session.add(LutEntry(table_id=table_id, key=f"w{worker}-k{i}", median_us=1.0,
                                 mean_us=1.0, std_us=0.0, min_us=1.0, p90_us=1.0, count=1, settings={}))
    store.close()


def run_concurrently(target, argument_tuples, timeout_s: float = 600) -> list[int]:
    """Start one spawned process per argument tuple at once; their exit codes once all have ended."""
    ctx = multiprocessing.get_context("spawn")
    processes = [ctx.Process(target=target, args=args) for args in argument_tuples]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=timeout_s)
    return [p.exitcode for p in processes]


def test_two_processes_writing_one_sqlite_file_lose_no_rows(sqlite_url):  # noqa: F811
    open_store(sqlite_url).close()
    assert run_concurrently(_insert_entries, [(sqlite_url, w, 150) for w in range(2)]) == [0, 0]
    store = open_store(sqlite_url)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(LutEntry)) == 300
    store.close()


# --- accuracy arithmetic -------------------------------------------------------------------------------------

def test_rank_correlations_fit_and_accuracy_on_hand_cases():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert spearman_rho([1, 2, 3, 4], [10, 20, 30, 45]) == 1.0
    assert spearman_rho([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 - 6 * 2 / (3 * 8)
    assert spearman_rho([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # ties at their mean rank
    # exactly 2 x lut + 0.25 x weight MB + 0.5
    features = np.zeros((4, len(FEATURE_NAMES)))
    features[:, 0], features[:, 1] = [1.0, 2.0, 4.0, 3.0], [4.0, 0.0, 8.0, 2.0]
    linear = fit_linear(features, [3.5, 4.5, 10.5, 7.0])
    assert (linear.scale, linear.ms_per_weight_mb, linear.offset_ms) == \
        (pytest.approx(2.0), pytest.approx(0.25), pytest.approx(0.5))
    assert linear.predict_ms(np.array([[1.0, 2.0, 0, 0, 0]])) == pytest.approx([3.0])
    with pytest.raises(ValueError, match="a linear calibration needs at least 3 measured archs to fit, got 2"):
        fit_linear(features[:2], [1, 2])
    acc = prediction_accuracy([1.04, 2.18, 2.9, 5.0], [1.0, 2.0, 3.0, 4.0])
    assert (acc.within_5_pct, acc.within_10_pct) == (0.5, 0.75)
    assert acc.rmspe == pytest.approx(100 * np.sqrt(np.mean(np.square([0.04, 0.09, -1 / 30, 0.25]))))
    assert (acc.kendall_tau, acc.spearman_rho) == (1.0, 1.0)


# --- the CLI -------------------------------------------------------------------------------------------------

def test_cli_build_query_list_export_import(tmp_path, tiny_space):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [*args], catch_exceptions=False)
        return result

    target = ["--space", "lut-test", "--resolution", "32", "--classes", "4"]
    dry = run("latency", "build-lut", *target, "--dry-run", "--db", db)
    assert dry.exit_code == 0
    lines = dry.output.splitlines()
    assert lines[0] == (f"8 keys for lut-test at 32x32x3, 4 classes, none; 0 stored on local in a new table "
                        f"(lut-test@{tiny_space.version}, {RUNTIME}, 1 thread, none), 8 missing")
    assert lines[1] == "missing  stem-input:32x32x3-output:8-kernel:3-stride:2" and len(lines) == 9
    built = run("latency", "build-lut", *target, "--db", db)
    assert built.exit_code == 0 and built.output.splitlines()[-1].endswith("; 8 of 8 now stored in table #1")
    arch = "dwconv_k3_se0_noskip_w1_n1:mbconv3_k3_se0_id_w1_n2"
    query = run("latency", "query", "--arch", arch, *target, "--db", db, "--json")
    record = json.loads(query.output)[0]
    assert record["source"] == "predicted" and record["arch"] == arch and record["latency_ms"] > 0
    bad = run("latency", "query", "--arch", "dwconv", *target, "--db", db)
    assert bad.exit_code == 2 and "Invalid value for --arch: space 'lut-test': expected 2 blocks" in bad.output
    listing = json.loads(run("latency", "list", "--db", db, "--json").output)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", listing[0].pop("built"))
    assert listing == [{"table": 1, "device": HOST_DEVICE, "space": f"lut-test@{tiny_space.version}",
                        "runtime": RUNTIME, "threads": 1, "quantization": "none", "shapes": "32x32x3 with 4 classes",
                        "entries": 8, "measured": 0, "calibrations": 0, "current": True}]
    out = tmp_path / "t.csv"
    assert run("latency", "export", "--format", "csv", "--out", str(out), "--db", db).exit_code == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run("latency", "import", str(out), "--device", "local", "--db", other).output == \
        "imported 8 entries, 0 already present\n"
    assert run("latency", "import", str(out), "--device", "local", "--db", other).output == \
        "imported 0 entries, 8 already present\n"
    unknown = run("latency", "query", "--arch", arch, *target, "--device", "nope", "--db", db)
    assert unknown.exit_code == 1 and unknown.output == f"Error: unknown device 'nope'; known devices: {HOST_DEVICE}\n"
    assert run("db", "upgrade", "--db", db).output == f"{db}: schema at revision {head_revision()}\n"


def _build_tiny_lut(url: str) -> None:
    from db_fixtures import tiny_space
    from latency_db.lut import build_lut
    from latency_db.store import open_store

    store = open_store(url)
    build_lut(store, "local", tiny_space(), TARGET, settings=QUICK)
    store.close()


def test_two_builders_on_one_sqlite_file_store_each_key_once(sqlite_url, tiny_space):  # noqa: F811
    open_store(sqlite_url).close()
    assert run_concurrently(_build_tiny_lut, [(sqlite_url,)] * 2) == [0, 0]
    store = open_store(sqlite_url)
    with store.session() as session:
        keys = session.scalars(select(LutEntry.key)).all()
    assert len(keys) == len(set(keys)) == 8
    store.close()


def test_lut_build_converts_a_chunk_before_timing_any_of_it(sqlite_url, tiny_space, monkeypatch):  # noqa: F811
    from pathlib import Path

    from latency_db import lut

    timed = []
    real_backend_for = lut.backend_for

    def watching_backend_for(device):
        backend = real_backend_for(device)

        def run(d, path, settings):  # which micro-models exist on disk when this one is timed
            timed.append(sorted(p.name for p in Path(path).parent.glob("op*.tflite")))
            return backend(d, path, settings)
        return run

    monkeypatch.setattr(lut, "AHEAD_CHUNK", 3)
    monkeypatch.setattr(lut, "backend_for", watching_backend_for)
    store = open_store(sqlite_url)
    summary = build_lut(store, "local", tiny_space, TARGET, settings=QUICK, workers=1, limit=5)
    assert (summary.measured, summary.already_stored) == (5, 0)
    # chunk 1 (keys 0-2) converted before any is timed, each file removed once timed; then chunk 2 (3-4)
    assert timed == [["op0.tflite", "op1.tflite", "op2.tflite"], ["op1.tflite", "op2.tflite"], ["op2.tflite"],
                     ["op3.tflite", "op4.tflite"], ["op4.tflite"]]
    assert len(plan_build(store, "local", tiny_space, TARGET).missing) == 3
    store.close()


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, tiny_space):
    runner = CliRunner()
    target = ["--space", "lut-test", "--resolution", "32", "--classes", "4"]
    arch = "dwconv_k3_se0_noskip_w1_n1:mbconv3_k3_se0_id_w1_n2"
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    empty = runner.invoke(main, ["latency", "query", "--arch", arch, *target, "--db", db])
    assert empty.exit_code == 1 and empty.output == (
        f"Error: device 'local' (local@test-host) has no latency table for lut-test@{tiny_space.version}, "
        f"{RUNTIME}, 1 thread, none; it has none yet; build it with: akd-tf latency build-lut --device local "
        f"--space lut-test --resolution 32 --channels 3 --classes 4 --quantize none\n")
    down = runner.invoke(main, ["latency", "list", "--db", "postgresql+psycopg://u:hunter2@127.0.0.1:9/x"])
    assert down.exit_code == 1 and len(down.output.splitlines()) == 1
    assert down.output.startswith("Error: cannot open the latency database postgresql+psycopg://u:***@127.0.0.1:9/x")
    (tmp_path / "broken.csv").write_text(
        "space,space_version,quantization,threads,runtime,key,median_us,mean_us,std_us,min_us,p90_us,count,"
        "measured_at\n"
        "s,v,none,1,r,k1,1,1,0,1,1,5,2026-01-01T00:00:00\ns,v,none,1,r,k2,-4,1,0,1,1,5,nope\n")
    broken = runner.invoke(main, ["latency", "import", str(tmp_path / "broken.csv"), "--device", "local", "--db", db])
    assert broken.exit_code == 1 and broken.output.startswith("Error: ") and "broken.csv: line 3" in broken.output
    assert runner.invoke(main, ["latency", "list", "--db", db]).output == \
        "no latency tables; build one with `akd-tf latency build-lut`\n"
    info = runner.invoke(main, ["info", "--json", "--db", "postgresql+psycopg://u:hunter2@h/x"])
    assert json.loads(info.output)["database"] == "postgresql+psycopg://u:***@h/x"


def test_a_calibration_worse_than_the_raw_sum_is_reported_and_not_used(lut_store, tiny_space):
    from latency_db.calibrate import chosen_method

    better, worse = PredictionAccuracy(15, 0.4, 0.6, 12.0, 0.8, 0.9), PredictionAccuracy(15, 0.2, 0.3, 30.0, 0.7, 0.8)
    best = PredictionAccuracy(15, 0.6, 0.9, 5.0, 0.9, 0.95)
    assert chosen_method(worse, {"linear": better, "lightgbm": best}) == "lightgbm"
    assert chosen_method(worse, {"linear": better, "lightgbm": worse}) == "linear"
    assert chosen_method(better, {"linear": worse, "lightgbm": better}) is None  # equal to the raw sum: not used
    with lut_store.session() as session:
        common = dict(table_id=1, space=tiny_space.name, resolution=32, channels=3, classes=4, offset_ms=0.0,
                      n_fit=15, n_holdout=15, within_5_pct=0.0,
                      within_10_pct=0.0, kendall_tau=0.0)
        used = Calibration(scale=1.5, rmspe=10.0, raw_rmspe=20.0, accepted=True, **common)
        session.add(used)
        session.flush()
        session.add(Calibration(scale=9.0, rmspe=78.0, raw_rmspe=36.0, accepted=False, **common))
        used_id = session.query(Calibration).filter_by(scale=1.5).one().id
    assert LutPredictor.load(lut_store, "local", tiny_space, TARGET).calibration.id == used_id  # the newer is skipped


def test_calibration_sizes_are_checked_before_measuring(lut_store, tiny_space):
    with pytest.raises(ValueError, match=r"^calibration needs n_fit >= 30 archs, got 29 \(fit: 10 per coefficient "):
        calibrate(lut_store, "local", tiny_space, TARGET, 29, settings=QUICK)
    with pytest.raises(ValueError, match=r"^calibration needs holdout >= 10 archs, got 9 "):
        calibrate(lut_store, "local", tiny_space, TARGET, 30, holdout=9, settings=QUICK)
    with pytest.raises(ValueError, match=r"^space 'lut-test' gave only 64 distinct archs in 4050 random samples; "
                                         r"this calibration needs 2000 \+ 50 = 2050$"):
        calibrate(lut_store, "local", tiny_space, TARGET, 2000, holdout=50, settings=QUICK)
    with lut_store.session() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 0  # refused before measuring


def test_tries_store_one_measurement_each_and_say_whether_they_agree(lut_store, tiny_space):
    from latency_db.reproducibility import AGREEMENT, Tries, measure_tries

    arch = tiny_space.sample_many(1, 8)[0]
    seen = []
    result = measure_tries(lut_store, "local", arch, TARGET, 3, settings=QUICK,
                           on_try=lambda number, row: seen.append((number, row.id)))
    with lut_store.session() as session:
        rows = [session.get(Measurement, i) for i in result.measurement_ids]
        assert len({row.run_key for row in rows}) == 3 and len({row.model_id for row in rows}) == 1
    assert [number for number, _ in seen] == [1, 2, 3] and tuple(i for _, i in seen) == result.measurement_ids
    assert result.latencies_ms == tuple(row.min_us / 1000 for row in rows)
    assert result.spread == max(result.latencies_ms) / min(result.latencies_ms) - 1
    assert result.agree == (result.spread <= AGREEMENT)
    assert Tries((1, 2), (1.00, 1.049)).agree and not Tries((1, 2), (1.00, 1.051)).agree
    with pytest.raises(ValueError, match=r"^tries must be an int >= 2 to compare measurements, got 1$"):
        measure_tries(lut_store, "local", arch, TARGET, 1)


def test_measure_tries_cli_prints_each_try_and_the_verdict(lut_store, tiny_space):
    arch = tiny_space.sample_many(1, 9)[0].to_string()
    args = ["latency", "measure", "--arch", arch, "--space", tiny_space.name, "--resolution", "32", "--classes", "4",
            "--runs", "3", "--min-secs", "0", "--db", str(lut_store.url)]
    result = CliRunner().invoke(main, [*args, "--tries", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["try 1", "try 2"]
    assert re.fullmatch(r"2 tries on local: latencies \d+\.\d{3}-\d+\.\d{3} ms, spread \d+\.\d% \(max/min - 1\): "
                        r"they (agree|do NOT agree) within 5%", lines[2])
    refused = CliRunner().invoke(main, [*args, "--tries", "2", "--no-wait"])
    assert refused.exit_code == 2 and "--tries compares measurements as they finish: drop --no-wait" in refused.output
    with lut_store.session() as session:  # the CLI measures with the whole-model protocol, its two options changed
        stored = [m.settings for m in session.scalars(select(Measurement))]
    assert [(s["repeats"], s["repeat_gap_s"], s["num_runs"], s["min_secs"]) for s in stored] == [(3, 0.5, 3, 0.0)] * 2


def test_a_device_s_only_table_gives_the_shape_a_command_leaves_out(lut_store, tiny_space):
    from akd_tf.target import DEFAULT_TARGET
    from latency_db.tables import TableShapes, resolve_target, table_shapes

    with lut_store.session() as session:
        assert table_shapes(session, session.scalars(select(LatencyTable)).all()) == {
            1: TableShapes("none", ((32, 3),), (4,))}
    assert resolve_target(lut_store, "local", tiny_space) == TARGET
    assert resolve_target(lut_store, "local", tiny_space, classes=4) == TARGET
    given = dict(resolution=96, channels=1, classes=7, quantization="int8")
    assert resolve_target(lut_store, "local", tiny_space, **given) == ModelTarget(96, 7, 1, "int8")  # typed wins
    with lut_store.session() as session:
        session.add(Device(name="px", kind="adb", model="Pixel 7", status="online"))
    assert resolve_target(lut_store, "px", tiny_space) == DEFAULT_TARGET  # no table: today's defaults
    assert resolve_target(lut_store, "local", get_space("mnasnet")) == DEFAULT_TARGET  # none for this space

    arch = tiny_space.sample_many(1, 3)[0].to_string()
    query = ["latency", "query", "--arch", arch, "--space", tiny_space.name, "--db", str(lut_store.url)]
    result = CliRunner().invoke(main, query)
    assert result.exit_code == 0, result.output
    assert result.output.split()[2:4] == ["predicted", arch]  # priced from the 32x32 table, nothing retyped

    build_lut(lut_store, "local", tiny_space, ModelTarget(32, 10), settings=QUICK)  # a second class count
    with pytest.raises(ValueError, match=r"^device 'local' has latency tables for 32x32x3 with 4 or 10 classes "
                                         r"\(none\): choose one with --resolution, --channels, --classes and "
                                         r"--quantize$"):
        resolve_target(lut_store, "local", tiny_space)
    assert resolve_target(lut_store, "local", tiny_space, classes=10) == ModelTarget(32, 10)
    ambiguous = CliRunner().invoke(main, query)
    assert ambiguous.exit_code == 1 and ambiguous.output.startswith("Error: device 'local' has latency tables for")
