import os

import pytest
import tf_keras as keras

from akd_tf import export
from akd_tf.benchmark import (BenchmarkResult, RunSettings, latency_us, repeat_share, repeat_spread, repeats_settled,
                              resolve_core, run_local_benchmark, time_model, wants_another_repeat)
from akd_tf.interpreter import load_interpreter, make_interpreter

QUICK = RunSettings(num_runs=20, warmup_runs=2, min_secs=0.0, warmup_min_secs=0.0)


@pytest.fixture(scope="module")
def tflite_path(space, tmp_path_factory):
    keras.backend.clear_session()
    model = export.build_for_export(space.sample_many(1, seed=0)[0], (32, 32, 3), 10)
    return export.export_tflite(model, tmp_path_factory.mktemp("m") / "m.tflite").path


def test_local_benchmark_record(tflite_path):
    before = os.sched_getaffinity(0)
    result = run_local_benchmark(tflite_path, QUICK, core="auto")
    assert os.sched_getaffinity(0) == before  # pinning is undone
    assert result.device == "local" and result.count == 20
    assert result.settings.core == max(before) and result.settings.num_threads == 1
    assert result.settings.runtime == load_interpreter().label
    assert 0 < result.min_us <= result.median_us <= result.p90_us <= result.max_us
    assert result.min_us <= result.mean_us <= result.max_us and result.std_us >= 0
    assert result.init_us > 0 and result.first_inference_us > 0 and result.warmup_mean_us > 0
    assert BenchmarkResult.from_dict(result.to_dict()) == result


def test_min_secs_extends_the_run(tflite_path):
    result = run_local_benchmark(tflite_path, RunSettings(num_runs=1, warmup_runs=0, min_secs=0.2,
                                                          warmup_min_secs=0.0))
    assert result.count > 1 and result.mean_us * result.count >= 0.15e6


def test_largest_arch_measures_slower_than_smallest(smallest_arch, largest_arch, tmp_path):
    medians = {}
    for name, arch in (("small", smallest_arch), ("large", largest_arch)):
        keras.backend.clear_session()
        model = export.build_for_export(arch, (96, 96, 3), 10)
        path = export.export_tflite(model, tmp_path / f"{name}.tflite").path
        medians[name] = run_local_benchmark(path, QUICK).median_us
    assert medians["large"] > 5 * medians["small"], medians


def test_corrupt_and_missing_models_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"bad.tflite: not a TFLite model \(expected the file identifier TFL3"):
        run_local_benchmark(bad, QUICK)
    with pytest.raises(ValueError, match="missing.tflite: no such model file"):
        run_local_benchmark(tmp_path / "missing.tflite", QUICK)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 8)
    with pytest.raises(ValueError, match="truncated.tflite: the TFLite interpreter rejected the model"):
        make_interpreter(truncated)


def test_settings_and_cores_are_validated():
    with pytest.raises(ValueError, match="num_runs must be an int >= 1, got 0"):
        RunSettings(num_runs=0)
    with pytest.raises(ValueError, match=r"core 4096 is not available to this process; available cores: \["):
        resolve_core(4096)
    with pytest.raises(ValueError, match="core must be an int, 'auto' or 'none', got 'big'"):
        resolve_core("big")
    assert resolve_core("none") is None


def test_interpreter_choice(monkeypatch):
    assert load_interpreter().name == "ai-edge-litert"
    assert load_interpreter("tensorflow").name == "tensorflow"
    with pytest.raises(ValueError, match="unknown TFLite interpreter 'tvm'; expected one of ai-edge-litert, "
                                         "tflite-runtime, tensorflow"):
        load_interpreter("tvm")


def test_the_latency_is_the_minimum_of_the_timed_runs(tflite_path):
    result = run_local_benchmark(tflite_path, QUICK)
    assert latency_us(result) == result.min_us and result.latency_ms == result.min_us / 1000
    assert result.repeat_spread is None  # one repeat: nothing to compare


def test_a_settled_measurement_has_its_minimum_twice():
    assert repeats_settled([100.0], 0.03)
    assert repeats_settled([100.0, 103.0, 150.0], 0.03) and repeats_settled([150.0, 102.9, 100.0], 0.03)
    assert not repeats_settled([100.0, 103.1, 150.0], 0.03)


def test_the_repeat_rule_asks_for_the_repeats_then_extras_until_settled_up_to_the_bound():
    settings = RunSettings(repeats=3, settle_within=0.03, max_extra_repeats=2)
    assert [wants_another_repeat(m, settings) for m in ([], [100.0], [100.0, 200.0])] == [True, True, True]
    assert not wants_another_repeat([100.0, 200.0, 102.0], settings)  # 100 seen again within 3%: settled
    assert wants_another_repeat([100.0, 200.0, 104.0], settings)  # not settled: a fourth
    assert wants_another_repeat([100.0, 200.0, 104.0, 150.0], settings)  # a fifth, the last extra
    assert not wants_another_repeat([100.0, 200.0, 104.0, 150.0, 130.0], settings)  # bounded at 3 + 2
    assert not wants_another_repeat([100.0], RunSettings())  # one repeat asked for: one taken
    assert repeat_spread([100.0, 200.0, 104.0]) == 1.0 and repeat_spread([100.0]) is None


def test_a_repeat_gets_its_share_of_the_timed_runs_and_seconds():
    assert repeat_share(RunSettings()) == (50, 1.0)
    assert repeat_share(RunSettings(repeats=3)) == (17, 1.0 / 3)  # runs rounded up
    assert repeat_share(RunSettings(num_runs=2, min_secs=0.0, repeats=3)) == (1, 0.0)


def test_repeats_are_added_until_settled_and_bounded(tflite_path):
    settings = RunSettings(num_runs=6, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0, repeats=3,
                           max_extra_repeats=2, settle_within=0.0)  # 0: only identical minimums settle
    raw = time_model(tflite_path, settings)
    minimums = raw.repeat_minimums_us
    assert 3 <= len(minimums) <= 5 and len(raw.timed_us) >= 2 * len(minimums)  # 6 runs shared out: 2 each
    for count in range(3, len(minimums)):
        assert not repeats_settled(minimums[:count], 0.0)  # each extra repeat was needed
    assert len(minimums) == 5 or repeats_settled(minimums, 0.0)


def test_repeats_pool_their_runs_and_keep_their_spread(tflite_path):
    result = run_local_benchmark(tflite_path, RunSettings(num_runs=9, warmup_runs=1, min_secs=0.0,
                                                          warmup_min_secs=0.0, repeats=3, repeat_gap_s=0.01))
    assert result.count >= 9 and result.settings.repeats == 3
    assert result.repeat_spread is not None and result.repeat_spread >= 0.0
    assert BenchmarkResult.from_dict(result.to_dict()) == result
    with pytest.raises(ValueError, match=r"^repeats must be an int >= 1, got 0$"):
        RunSettings(repeats=0)


def test_a_batch_interleaves_its_repeats_round_by_round(tflite_path, tmp_path, monkeypatch):
    from pathlib import Path

    from akd_tf import benchmark

    paths = [tmp_path / name for name in ("a.tflite", "b.tflite")]
    for path in paths:
        path.write_bytes(Path(tflite_path).read_bytes())
    loads = []
    real_loaded = benchmark._loaded
    monkeypatch.setattr(benchmark, "_loaded", lambda path, settings, seed: loads.append(Path(path).stem)
                        or real_loaded(path, settings, seed))
    settings = RunSettings(num_runs=6, warmup_runs=1, min_secs=0.0, warmup_min_secs=0.0, repeats=3,
                           max_extra_repeats=0)
    raws = benchmark.time_models(paths, settings)
    assert loads == ["a", "b", "a", "b", "a", "b"]  # repeat r of every model before repeat r + 1 of any
    assert [len(raw.repeat_minimums_us) for raw in raws] == [3, 3]
    results = benchmark.run_local_benchmarks(paths, settings)
    assert [r.count for r in results] == [6, 6] and all(r.settings.repeats == 3 for r in results)
