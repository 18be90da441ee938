"""benchmark_model output, every release's format, parsed into one result record."""

import pytest

from akd_tf.benchmark import RunSettings
from devicefarm.benchmark_output import BenchmarkOutputError, parse_benchmark_output

SETTINGS = RunSettings(num_runs=50, core=7, runtime="benchmark_model")

RECENT = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [1]
Graph: [/data/local/tmp/akd-tf/m.tflite]
#threads used for CPU inference: [1]
Loaded model /data/local/tmp/akd-tf/m.tflite
INFO: Initialized TensorFlow Lite runtime.
The input model file size (MB): 0.123
Initialized session in 12.345ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=184 first=3812 curr=2607 min=2554 max=3812 avg=2710.45 std=166

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=371 first=2698 curr=2650 min=2547 max=3059 avg=2689.1 std=66

Inference timings in us: Init: 12345, First inference: 3812, Warmup (avg): 2710.45, Inference (avg): 2689.1
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE.
Memory footprint delta from the start of the tool (MB): init=3.5 overall=4.2
"""

OLDER = """\
Min num runs: [50]
Num threads: [1]
Graph: [/data/local/tmp/m.tflite]
Loaded model /data/local/tmp/m.tflite
Initialized session in 9.1ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds
count=120 first=4100 curr=2800 min=2700 max=4100 avg=2900 std=150

Running benchmark for at least 50 iterations and at least 1 seconds
count=350 first=2810 curr=2790 min=2650 max=3100 avg=2800.5 std=70

Average inference timings in us: Warmup: 2900, Init: 9100, Inference: 2800.5
"""

OLDEST = OLDER.replace("Inference: 2800.5", "no stats: 2800.5")


def test_recent_format():
    result = parse_benchmark_output(RECENT, device="pixel4", settings=SETTINGS)
    assert (result.init_us, result.first_inference_us, result.warmup_mean_us) == (12345.0, 3812.0, 2710.45)
    assert (result.mean_us, result.median_us, result.std_us) == (2689.1, 2689.1, 66.0)
    assert (result.min_us, result.max_us, result.count, result.p90_us) == (2547.0, 3059.0, 371, None)
    assert result.device == "pixel4" and result.settings is SETTINGS and result.raw_output == RECENT


def test_log_prefixes_of_recent_builds_are_ignored():
    prefixed = "".join(f"INFO: {line}\n" for line in RECENT.splitlines())
    assert parse_benchmark_output(prefixed, device="d", settings=SETTINGS).to_dict() == {
        **parse_benchmark_output(RECENT, device="d", settings=SETTINGS).to_dict(), "raw_output": prefixed}


@pytest.mark.parametrize("text", [OLDER, OLDEST], ids=["older", "oldest"])
def test_older_formats_take_first_inference_from_the_warmup_line(text):
    result = parse_benchmark_output(text, device="p3", settings=SETTINGS)
    assert (result.init_us, result.first_inference_us, result.warmup_mean_us) == (9100.0, 4100.0, 2900.0)
    assert (result.mean_us, result.min_us, result.max_us, result.std_us, result.count) == (
        2800.5, 2650.0, 3100.0, 70.0, 350)


def test_percentile_tokens_are_used_when_a_build_prints_them():
    text = RECENT.replace("avg=2689.1 std=66", "avg=2689.1 std=66 p5=2560 median=2680 p90=2790 p95=2850")
    result = parse_benchmark_output(text, device="d", settings=SETTINGS)
    assert (result.median_us, result.p90_us, result.mean_us) == (2680.0, 2790.0, 2689.1)


@pytest.mark.parametrize("text, message", [
    ("Segmentation fault\n", "no 'count=... avg=... std=...' statistics line"),
    ("ERROR: Could not open '/data/local/tmp/x.tflite'.\nFailed to initialize the interpreter\n",
     "no 'count=... avg=... std=...' statistics line; the output says: "
     "\"ERROR: Could not open '/data/local/tmp/x.tflite'.\""),
    (RECENT.split("Inference timings")[0], "no 'Inference timings in us' or 'Average inference timings in us' "
                                           "summary line"),
    (RECENT.replace("Inference (avg): 2689.1", "Inference (avg): 9999"),
     "the summary's inference average 9999 us disagrees with the timed-phase line's avg=2689.1"),
    ("count=0 first=0 curr=0 min=0 max=0 avg=0 std=0\n", "the timed phase reports count=0"),
    ("count=3 first=1 min=1 max=2 avg=1.5\n", "the timed-phase statistics line lacks curr, std"),
])
def test_unusable_output_names_what_is_missing_and_keeps_the_text(text, message):
    with pytest.raises(BenchmarkOutputError) as caught:
        parse_benchmark_output(text, device="d", settings=SETTINGS)
    assert str(caught.value) == f"unparseable benchmark_model output: {message}"
    assert caught.value.raw_output == text


SINGLE_RUN = RECENT.replace("count=371 first=2698 curr=2650 min=2547 max=3059 avg=2689.1 std=66", "count=1 curr=2650") \
    .replace("Inference (avg): 2689.1", "Inference (avg): 2650")
ALL_SAME = RECENT.replace("count=371 first=2698 curr=2650 min=2547 max=3059 avg=2689.1 std=66",
                          "count=12 curr=2650(all same)").replace("Inference (avg): 2689.1", "Inference (avg): 2650")
EMPTY_WARMUP = RECENT.replace("count=184 first=3812 curr=2607 min=2554 max=3812 avg=2710.45 std=166", "count=0") \
    .replace("Warmup (avg): 2710.45", "Warmup (avg): -nan")


@pytest.mark.parametrize("text, count", [(SINGLE_RUN, 1), (ALL_SAME, 12)], ids=["single-run", "all-same"])
def test_a_phase_of_one_run_or_identical_runs_has_every_statistic(text, count):
    result = parse_benchmark_output(text, device="d", settings=SETTINGS)
    assert (result.count, result.mean_us, result.median_us, result.min_us, result.max_us, result.std_us) == (
        count, 2650.0, 2650.0, 2650.0, 2650.0, 0.0)
    assert (result.init_us, result.first_inference_us, result.warmup_mean_us) == (12345.0, 3812.0, 2710.45)


def test_an_empty_warmup_phase_leaves_the_timed_phase_usable():
    result = parse_benchmark_output(EMPTY_WARMUP, device="d", settings=SETTINGS)
    assert (result.count, result.mean_us, result.std_us) == (371, 2689.1, 66.0)
    assert result.warmup_mean_us != result.warmup_mean_us  # NaN: no warm-up run to average


def test_an_older_build_with_an_empty_warmup_takes_first_inference_from_the_timed_phase():
    text = OLDER.replace("count=120 first=4100 curr=2800 min=2700 max=4100 avg=2900 std=150", "count=0") \
        .replace("Warmup: 2900", "Warmup: nan")
    result = parse_benchmark_output(text, device="d", settings=SETTINGS)
    assert (result.first_inference_us, result.count, result.mean_us) == (2810.0, 350, 2800.5)


@pytest.mark.parametrize("line, message", [
    ("count=371 first=2698 curr=2650 min=2547 max=3059 avg=26x9.1 std=66",
     "malformed statistics token 'avg=26x9.1' in 'count=371 first=2698 curr=2650 min=2547 max=3059 avg=26x9.1 "
     "std=66'"),
    ("count=371 first=2698 curr=2650 min=2547 max=3059 avg=2689.1 std=",
     "malformed statistics token 'std=' in 'count=371 first=2698 curr=2650 min=2547 max=3059 avg=2689.1 std='"),
    ("count=3.5 curr=2650", "statistics line 'count=3.5 curr=2650' has no run count"),
    ("count=0", "the timed phase reports count=0"),
])
def test_a_malformed_timed_phase_is_a_clear_error_never_a_skipped_line(line, message):
    text = RECENT.replace("count=371 first=2698 curr=2650 min=2547 max=3059 avg=2689.1 std=66", line)
    with pytest.raises(BenchmarkOutputError) as caught:
        parse_benchmark_output(text, device="d", settings=SETTINGS)
    assert str(caught.value) == f"unparseable benchmark_model output: {message}"
