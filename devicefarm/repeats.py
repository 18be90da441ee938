"""One farm job's ``benchmark_model`` repeats as one result.

A phone measures a model in the repeats of its :class:`~akd_tf.benchmark.RunSettings`, each repeat one
``benchmark_model`` run (:meth:`devicefarm.runner.PhoneRunner.run_benchmark`). ``benchmark_model`` prints
summaries of its runs, not the runs, so :func:`pool_repeats` combines the repeats' parsed summaries into
the statistics of all their timed runs:

- ``min_us`` and ``max_us``: the least minimum and the greatest maximum (exact). ``min_us`` is the latency.
- ``count``: the repeats' timed runs added up.
- ``mean_us``: the count-weighted mean of the repeats' means, the mean of all runs (exact up to the rounding
  of benchmark_model's ``avg``).
- ``std_us``: the population standard deviation of all runs, from each repeat's count, mean and standard
  deviation (benchmark_model's ``std`` is the population one; exact up to its truncation to whole us).
- ``median_us`` and ``p90_us``: the count-weighted means of the repeats' values. benchmark_model prints no
  quantiles, so a repeat's ``median_us`` is its mean, the pooled ``median_us`` is then the pooled mean, and
  ``p90_us`` is None (None as soon as one repeat lacks it). For a build that prints ``median=`` or ``p90=``
  this approximates the quantiles of the pooled runs, which summaries cannot give exactly.
- ``init_us``, ``first_inference_us`` and ``warmup_mean_us``: the first repeat's, the model's first load
  after its push. Every repeat loads and warms up anew; the later ones add timed runs.
- ``repeat_spread``: :func:`akd_tf.benchmark.repeat_spread` of the repeats' minimums (None for one repeat).
- ``raw_output``: :func:`joined_outputs`, every repeat's output kept.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from akd_tf.benchmark import BenchmarkResult, RunSettings, repeat_spread
from akd_tf.errors import InvalidInput

REPEAT_HEADER = "--- akd-tf: repeat {index} of {total} ---"


def joined_outputs(outputs: Sequence[str]) -> str:
    """The raw outputs of a job's repeats as one text, in order: one repeat's output unchanged; several each
    after a line ``--- akd-tf: repeat I of N ---`` (N: the repeats that ran)."""
    if len(outputs) == 1:
        return outputs[0]
    return "".join(f"{REPEAT_HEADER.format(index=i, total=len(outputs))}\n{text}"
                   + ("" if text.endswith("\n") or not text else "\n")
                   for i, text in enumerate(outputs, start=1))


def _weighted_mean(values: Sequence[float], counts: Sequence[int]) -> float:
    return sum(value * count for value, count in zip(values, counts)) / sum(counts)


def pool_repeats(repeats: Sequence[BenchmarkResult], *, settings: RunSettings) -> BenchmarkResult:
    """The result of a job's repeats (the parsed output of each of its ``benchmark_model`` runs, in order), pooled
    as the module docstring says (one repeat: its own result), recorded with ``settings`` (what the job ran).
    ValueError for no repeats."""
    if not repeats:
        raise InvalidInput("pooling a job's repeats needs at least one repeat")
    if len(repeats) == 1:  # its own statistics, as parsed
        return replace(repeats[0], settings=settings)
    first, counts = repeats[0], [r.count for r in repeats]
    mean = _weighted_mean([r.mean_us for r in repeats], counts)
    variance = _weighted_mean([r.std_us ** 2 + (r.mean_us - mean) ** 2 for r in repeats], counts)
    p90s = [r.p90_us for r in repeats]
    return BenchmarkResult(
        init_us=first.init_us, first_inference_us=first.first_inference_us, warmup_mean_us=first.warmup_mean_us,
        median_us=_weighted_mean([r.median_us for r in repeats], counts), mean_us=mean, std_us=math.sqrt(variance),
        min_us=min(r.min_us for r in repeats), max_us=max(r.max_us for r in repeats),
        p90_us=None if None in p90s else _weighted_mean(p90s, counts), count=sum(counts), device=first.device,
        settings=settings, raw_output=joined_outputs([r.raw_output for r in repeats]),
        repeat_spread=repeat_spread([r.min_us for r in repeats]))
