"""Pricing the shapes a latency table never measured: a table version's kernel model, fitted on its real
entries, used by the predictor and `akd-tf latency query` only with --price-missing, and saying so."""

import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from akd_tf.benchmark import RunSettings
from akd_tf.cli import main
from akd_tf.plan import plan_network
from akd_tf.target import ModelTarget
from db_fixtures import HOST_ID
from latency_db.accuracy import prediction_accuracy
from latency_db.corrections import Region
from latency_db.kernel_features import kernel_features_many
from latency_db.kernel_models import KernelCostModel, fit_kernel_model
from latency_db.kernel_pricing import fit_table_kernel_model, load_kernel_pricing, measured_operators
from latency_db.predictor import LutPredictor, MissingKeysError
from latency_db.query import query_latency
from latency_db.schema import Calibration, KernelModel, LatencyTable, LutEntry
from latency_db.store import open_store
from latency_db.tables import resolve_target

QUICK = RunSettings(num_runs=10, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0)
ARCH = "dwconv_k3_se0_noskip_w1_n1:mbconv3_k3_se0_id_w1_n2"
PRICED = "akd-tf latency fit-kernels --device local --space lut-test --table 1"


@pytest.fixture(scope="module")
def two_resolutions(tmp_path_factory):
    """A SQLite file holding the tiny space's table built for real at 32x32 and 48x48 with 4 classes (16 keys)."""
    from db_fixtures import tiny_space
    from latency_db.lut import build_lut

    path = tmp_path_factory.mktemp("kernel") / "two.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AKD_TF_HOST_ID", HOST_ID)
        store = open_store(f"sqlite:///{path}")
        for resolution in (32, 48):
            build_lut(store, "local", tiny_space(), ModelTarget(resolution, 4), settings=QUICK)
        store.close()
    return path


@pytest.fixture
def store(two_resolutions, tmp_path):
    """A copy of the two-resolution table for one test."""
    path = tmp_path / "latency.db"
    shutil.copy(two_resolutions, path)
    store = open_store(f"sqlite:///{path}")
    yield store
    store.close()


def entries(store) -> dict[str, float]:
    with store.session() as session:
        return dict(session.execute(select(LutEntry.key, LutEntry.min_us)).all())


def test_fit_reads_the_entries_as_operators_and_stores_the_model_with_its_held_out_accuracy(store, tiny_space):
    report = fit_table_kernel_model(store, "local", tiny_space)
    assert (report.kernel_model_id, report.table_id, report.n_entries, report.unmatched) == (1, 1, 16, 0)
    assert report.shapes == "32x32x3 or 48x48x3 with 4 classes"
    with store.session() as session:
        measured = measured_operators(session, session.get(LatencyTable, 1), tiny_space)
        row = session.get(KernelModel, 1)
    table = entries(store)
    assert sorted(op.key for op in measured.operators) == sorted(table)
    assert list(measured.latency_us) == [table[op.key] for op in measured.operators]
    assert sorted(sorted(r) for r in set(measured.resolutions)) == [[32], [48]]

    # the held-out figure: fitted on the 8 entries of the 32x32 networks, pricing the 8 of the 48x48 ones
    held = report.held_out
    assert (held.resolution, held.n_fit, held.accuracy.n) == (48, 8, 8)
    at_32 = np.array([r == {32} for r in measured.resolutions])
    features = kernel_features_many(measured.operators, "none")
    alone = fit_kernel_model(features[at_32], measured.latency_us[at_32])
    assert held.accuracy == prediction_accuracy(alone.predict_us(features[~at_32]), measured.latency_us[~at_32])
    assert (row.space, row.method, row.n_entries, row.shapes, row.n_holdout) == \
        ("lut-test", "cost+lightgbm", 16, report.shapes, 8)
    assert (row.within_10_pct, row.rmspe) == (held.accuracy.within_10_pct, held.accuracy.rmspe)
    assert row.holdout == "8 entries only at 48x48, priced by a model fitted on the 8 of the other resolutions"
    assert row.library.startswith("lightgbm ") and sorted(row.region) == ["dwconv", "head", "mbconv", "stem"]
    stored = KernelCostModel.from_dict(row.model)  # the stored model is the one fitted on every entry
    refitted = fit_kernel_model(features, measured.latency_us)
    np.testing.assert_array_equal(stored.predict_us(features), refitted.predict_us(features))


def test_a_query_at_a_shape_the_table_lacks_fails_unless_asked_to_price_it(store, tiny_space):
    arch = tiny_space.parse(ARCH)
    at_64 = ModelTarget(64, 4)
    with pytest.raises(MissingKeysError) as err:
        query_latency(store, "local", tiny_space, [arch], at_64)
    assert str(err.value) == (
        "4 latency-table key(s) missing on device 'local' in table #1 (none) at 64x64x3 with 4 classes: "
        "stem-input:64x64x3-output:8-kernel:3-stride:2, dwconv-input:32x32x8-output:16-kernel:3-stride:2-se:0-noskip, "
        "mbconv3-input:16x16x16-output:16-kernel:3-stride:1-se:0-idskip, head-input:16x16x16-output:32-classes:4; "
        "table #1 holds 32x32x3 or 48x48x3 with 4 classes; build them with: akd-tf latency build-lut --device local "
        "--space lut-test --resolution 64 --channels 3 --classes 4 --quantize none; or price them from the table's "
        "kernel model (`akd-tf latency fit-kernels`, then `akd-tf latency query --price-missing`)")
    with pytest.raises(ValueError, match=rf"^latency table #1 has no kernel model to price missing entries with; "
                                         rf"fit one with: {PRICED}$"):
        query_latency(store, "local", tiny_space, [arch], at_64, price_missing=True)

    fit_table_kernel_model(store, "local", tiny_space)
    with store.session() as session:
        pricing = load_kernel_pricing(session, session.get(LatencyTable, 1), tiny_space, "local")
    ops = plan_network(arch, at_64.input_shape, 4).operators
    (estimate,) = query_latency(store, "local", tiny_space, [arch], at_64, price_missing=True)
    priced_us = pricing.model.predict_us(kernel_features_many(ops, "none"))
    assert estimate.latency_ms == pytest.approx(priced_us.sum() / 1000, rel=1e-12)
    assert (estimate.source, estimate.operators, estimate.kernel_priced) == ("predicted", 5, 5)  # mbconv3 twice
    keys = list(dict.fromkeys(op.key for op in ops))  # each priced entry, said to be predicted, with its price
    assert estimate.kernel_prices_us == dict(zip(keys, pricing.model.predict_us(kernel_features_many(
        [next(op for op in ops if op.key == key) for key in keys], "none"))))
    assert estimate.predictor == "raw LUT sum of table #1, 5 of 5 operators priced by kernel model #1 of table #1"
    assert estimate.detail.startswith("sum of 0 entries of table #1 and 5 operators priced by kernel model #1 of "
                                      "table #1: cost+lightgbm on 16 entries at 32x32x3 or 48x48x3 with 4 classes (")
    flags = pricing.regions.outside(kernel_features_many(ops, "none"))
    assert estimate.outside_region == (f"5 of 5 priced operators outside kernel model #1 of table #1's fitted region "
                                       f"(the first: {flags[0]})")
    assert flags[0].startswith("stem: input_h 64 outside fitted 32..48; input_w 64 outside fitted 32..48; ")

    # at a measured shape nothing is priced and the answer is today's; another class count prices the head only
    at_32, before = ModelTarget(32, 4), query_latency(store, "local", tiny_space, [arch], ModelTarget(32, 4))
    assert query_latency(store, "local", tiny_space, [arch], at_32, price_missing=True) == before
    assert (before[0].kernel_priced, before[0].predictor) == (0, "raw LUT sum of table #1")
    (ten,) = query_latency(store, "local", tiny_space, [arch], ModelTarget(32, 10), price_missing=True)
    table, ops_10 = entries(store), plan_network(arch, (32, 32, 3), 10).operators
    head_us = pricing.model.predict_us(kernel_features_many(ops_10[-1:], "none"))[0]
    assert ten.latency_ms == pytest.approx((sum(table[op.key] for op in ops_10[:-1]) + head_us) / 1000, rel=1e-12)
    assert ten.predictor == "raw LUT sum of table #1, 1 of 5 operators priced by kernel model #1 of table #1"
    assert ten.kernel_prices_us == {"head-input:8x8x16-output:32-classes:10": head_us}
    assert ten.outside_region.startswith("1 of 1 priced operators outside kernel model #1 of table #1's fitted "
                                         "region (the first: head: classes 10 outside fitted 4..4; ")


def test_a_calibration_never_corrects_a_priced_answer(store, tiny_space):
    arch = tiny_space.parse(ARCH)
    fit_table_kernel_model(store, "local", tiny_space)
    predictor = LutPredictor.load(store, "local", tiny_space, ModelTarget(32, 4))
    features = predictor.features(arch)
    with store.session() as session:  # accepted linear calibrations at 32x32 with 4 and with 10 classes
        for classes in (4, 10):
            session.add(Calibration(table_id=1, space=tiny_space.name, resolution=32, channels=3, classes=classes,
                                    scale=2.0, ms_per_weight_mb=0.0, offset_ms=1.0, n_fit=30, n_holdout=10,
                                    within_5_pct=1.0, within_10_pct=1.0, rmspe=1.0, raw_rmspe=5.0, kendall_tau=1.0,
                                    accepted=True, region=Region(tuple(features), tuple(features)).to_dict()))
    (measured_sum,) = query_latency(store, "local", tiny_space, [arch], ModelTarget(32, 4), price_missing=True)
    assert measured_sum.latency_ms == pytest.approx(2.0 * features[0] + 1.0) and measured_sum.predictor == \
        "calibration #1"
    (head_priced,) = query_latency(store, "local", tiny_space, [arch], ModelTarget(32, 10), price_missing=True)
    raw = LutPredictor.load(store, "local", tiny_space, ModelTarget(32, 10), price_missing=True).pricing(arch)
    assert head_priced.latency_ms == pytest.approx(raw.features[0], rel=1e-12)  # the raw sum, not 2x + 1
    assert head_priced.detail.endswith("; calibration #2 not applied (it corrects measured sums)")
    # a calibration fitted at 32x32 is never read at 64x64: the answer is the raw sum of priced operators
    (at_64,) = query_latency(store, "local", tiny_space, [arch], ModelTarget(64, 4), price_missing=True)
    assert "calibration" not in at_64.detail and at_64.predictor.startswith("raw LUT sum of table #1, 5 of 5 ")


def test_no_entries_and_another_space_are_errors(store, tiny_space):
    from akd_tf.space import get_space
    from latency_db.devices import lookup_device
    from latency_db.tables import TableIdentity, ensure_table

    with store.session() as session:  # an int8 version of the table, begun and empty
        device = lookup_device(session, "local")
        ensure_table(session, device, TableIdentity.current(device, tiny_space, "int8"))
    with pytest.raises(ValueError, match=r"^latency table #2 has no entries: a kernel model is fitted on measured "
                                         r"entries$"):
        fit_table_kernel_model(store, "local", tiny_space, quantization="int8")
    with pytest.raises(ValueError, match=r"^latency table #1 is for space 'lut-test', not 'mnasnet'$"):
        fit_table_kernel_model(store, "local", get_space("mnasnet"), table_id=1)
    fit_table_kernel_model(store, "local", tiny_space)
    with store.session() as session:  # a model of the same table fitted on another space's operators
        row = session.get(KernelModel, 1)
        session.add(KernelModel(**{c: getattr(row, c) for c in ("table_id", "method", "library", "model", "region",
                                                                "shapes", "n_entries")}, space="other"))
    with pytest.raises(ValueError, match=r"^kernel model #2 of table #1 was fitted on operators of space 'other', "
                                         r"not 'lut-test'$"):
        LutPredictor.load(store, "local", tiny_space, ModelTarget(64, 4), price_missing=True)


def test_a_typed_shape_the_table_lacks_keeps_the_table_s_other_parts(store, tiny_space):
    assert resolve_target(store, "local", tiny_space, resolution=64) == ModelTarget(64, 4)
    assert resolve_target(store, "local", tiny_space, resolution=64, classes=10) == ModelTarget(64, 10)
    assert resolve_target(store, "local", tiny_space, resolution=48) == ModelTarget(48, 4)
    with pytest.raises(ValueError, match=r"^device 'local' has latency tables for 32x32x3 or 48x48x3 with 4 classes "
                                         r"\(none\): choose one with"):
        resolve_target(store, "local", tiny_space, classes=10)


def test_cli_fits_the_kernel_model_and_prices_missing_operators_only_when_asked(store, tiny_space):
    db = str(store.url)
    runner = CliRunner()
    fitted = runner.invoke(main, ["latency", "fit-kernels", "--space", "lut-test", "--db", db])
    assert fitted.exit_code == 0, fitted.output
    with store.session() as session:
        row = session.get(KernelModel, 1)
    lines = fitted.output.splitlines()
    assert re.fullmatch(r"kernel model #1 of table #1: fitted on 16 entries \(32x32x3 or 48x48x3 with 4 classes\) "
                        r"in \d+\.\d s", lines[0]), lines[0]
    assert lines[1].startswith(f"per entry on {row.holdout}: {row.within_10_pct:.1%} within +-10%, ")
    assert lines[1].endswith(f", RMSPE {row.rmspe:.2f}%") and len(lines) == 2

    query = ["latency", "query", "--arch", ARCH, "--space", "lut-test", "--resolution", "64", "--db", db]
    refused = runner.invoke(main, query)
    assert refused.exit_code == 1 and refused.output.startswith(
        "Error: 4 latency-table key(s) missing on device 'local' in table #1 (none) at 64x64x3 with 4 classes: ")
    (expected,) = query_latency(store, "local", tiny_space, [tiny_space.parse(ARCH)], ModelTarget(64, 4),
                                price_missing=True)
    shown = runner.invoke(main, [*query, "--price-missing"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        f"{expected.latency_ms:9.3f} ms  predicted  {ARCH} (5 of 5 operators priced)  [{expected.detail}]",
        f"{'':12}  outside the kernel model's region, an extrapolation: {expected.outside_region}"]
    record = json.loads(runner.invoke(main, [*query, "--price-missing", "--json"]).output)[0]
    assert record == {**expected.to_dict(), "latency_ms": pytest.approx(expected.latency_ms)}
    assert (record["operators"], record["kernel_priced"], len(record["kernel_prices_us"])) == (5, 5, 4)
    assert record["predictor"] == "raw LUT sum of table #1, 5 of 5 operators priced by kernel model #1 of table #1"

    other_space = runner.invoke(main, ["latency", "fit-kernels", "--space", "mnasnet", "--table", "1", "--db", db])
    assert other_space.exit_code == 1
    assert other_space.output == "Error: latency table #1 is for space 'lut-test', not 'mnasnet'\n"
    json_fit = json.loads(runner.invoke(main, ["latency", "fit-kernels", "--space", "lut-test", "--db", db,
                                               "--json"]).output)
    assert (json_fit["kernel_model"], json_fit["entries"], json_fit["held_out"]["n"]) == (2, 16, 8)
