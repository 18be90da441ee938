"""One-line texts for a running search and its results (the CLI prints them; tests pin them).

No TensorFlow here: ``search list/status/top`` answer without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass

from search.failures import describe_exclusions


@dataclass(frozen=True)
class TrialEvent:
    """What the live display shows after each finished child (``search.loop.run_search`` reports them)."""

    trial: dict  # runs.trial_dict of the child that just finished
    finished: int  # finished trials of the run (done, failed or excluded)
    budget: int
    best: dict | None  # the best finished trial so far
    elapsed_s: float  # in this session
    eta_s: float | None  # for the rest of the budget, from this session's pace
    new_best: bool = False  # the best child changed with this one (never for the best a resumed run had)


def duration(seconds: float | None) -> str:
    """``"45s"``, ``"3m05s"``, ``"2h04m"``; ``"?"`` for unknown."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def reuse_note(trial: dict) -> str:
    """``"reused #3"`` (a trial of the same run), ``"reused #3 of run 'other'"``, or ``""`` for a trained child."""
    original = trial.get("reused_from")
    if original is None:
        return ""
    elsewhere = "" if original["run"] == trial.get("run") else f" of run {original['run']!r}"
    return f"reused #{original['number']}{elsewhere}"


def trial_outcome(trial: dict) -> str:
    """``"top-1 87.30%  0.823 ms (measured)  reward 0.8123"``, with ``"  (reused #3: same network)"`` for a
    child that took an earlier evaluation of its network, ``"  (stopped early after epoch 1)"`` for one that
    early stopping stopped, ``"FAILED: reason"`` (with the same note for a reused one), or
    ``"EXCLUDED after 3 attempts (not learnt from): reason"``."""
    if trial["status"] == "failed":
        reused = reuse_note(trial)
        return f"FAILED: {trial['error']}" + (f"  ({reused}: same network)" if reused else "")
    if trial["status"] == "excluded":
        attempts = trial["attempts"]
        return f"EXCLUDED after {attempts} attempt{'s' if attempts != 1 else ''} (not learnt from): {trial['error']}"
    reused = reuse_note(trial)
    stopped = trial.get("stopped_at_epoch")
    return (f"top-1 {trial['accuracy']:.2%}  {trial['latency_ms']:.3f} ms ({trial['latency_source']})  "
            f"reward {trial['reward']:.4f}" + (f"  ({reused}: same network)" if reused else "")
            + (f"  (stopped early after epoch {stopped})" if stopped else ""))


def event_line(event: TrialEvent) -> str:
    """The live display's line for one finished child: progress, the child, the best so far, time."""
    width = len(str(event.budget))
    best = event.best
    best_text = "none yet" if best is None else (
        f"#{best['number']} reward {best['reward']:.4f} (top-1 {best['accuracy']:.2%}, {best['latency_ms']:.3f} ms)")
    return (f"[{event.finished:>{width}}/{event.budget}] #{event.trial['number']} {trial_outcome(event.trial)} | "
            f"best {best_text} | {duration(event.elapsed_s)} elapsed, ETA {duration(event.eta_s)}")


def best_changed_line(event: TrialEvent) -> str | None:
    """``"  new best #N: ARCH"`` when this event changed the run's best child, else None."""
    if not event.new_best:
        return None
    return f"  new best #{event.best['number']}: {event.best['arch']}"


def children_counts(summary: dict) -> str:
    """``"5 done (2 reused), 2 failed (1 reused), 2 excluded, 0 pending of 8"`` (reused and excluded only when
    there are some)."""
    trials = summary["trials"]
    reused, reused_failed = (f" ({summary[key]} reused)" if summary.get(key) else "" for key in
                             ("reused", "reused_failed"))
    excluded = f"{trials['excluded']} excluded, " if trials["excluded"] else ""
    return (f"{trials['done']} done{reused}, {trials['failed']} failed{reused_failed}, {excluded}"
            f"{trials['pending']} pending of {summary['trials_budget']}")


def excluded_reasons(summary: dict) -> str:
    """``"worker-died 2 (last: worker died: ...); farm-job-failed 1 (last: ...)"``; ``"none"`` without any."""
    return describe_exclusions(summary["excluded"]) or "none"


def describe_latency(identity: dict) -> str:
    """One line for a latency source as a run records it (:meth:`search.latency.LatencySource.identity`)."""
    predictor, measurement = identity.get("predictor"), identity.get("measurement")
    parts = []
    if measurement is not None:
        protocol = measurement["protocol"]
        core = "" if measurement.get("core") is None else f", core {measurement['core']}"
        parts.append(f"whole-model measurements by {measurement['runtime']} ({protocol['num_threads']} thread"
                     f"{'' if protocol['num_threads'] == 1 else 's'}, >= {protocol['num_runs']} runs and "
                     f"{protocol['min_secs']} s in {protocol['repeats']} repeat"
                     f"{'' if protocol['repeats'] == 1 else 's'}{core})")
    if predictor is not None:
        calibration = predictor["calibration_id"]
        parts.append(f"predictions of latency table #{predictor['table_id']} "
                     + (f"with calibration #{calibration}" if calibration is not None else "(raw sums, uncalibrated)"))
    if identity.get("source") == "mixed":
        return f"mixed: {parts[0]} where stored, else {parts[1]}"
    return parts[0]


def summary_lines(summary: dict) -> list[str]:
    """What ``akd-tf search`` prints at the end and ``search status`` shows: counts, best child, next step."""
    trials = summary["trials"]
    lines = [f"search {summary['name']!r}: {summary['status']}, {children_counts(summary)} "
             f"({summary['controller']} controller, reward {summary['reward']}, accuracy from "
             f"{summary['reward_source']}, device {summary['device']})"]
    if trials["excluded"]:
        lines.append(f"excluded (infrastructure failures, not learnt from): {excluded_reasons(summary)}")
    latency = summary.get("latency")
    if latency is not None:
        lines.append(f"latency: {describe_latency(latency['current'])}" + "".join(
            f"; before trial #{earlier['until_trial']}: {describe_latency(earlier['latency'])}"
            for earlier in reversed(latency["earlier"])))
    best = summary["best"]
    if best is None:
        lines.append("no finished trial yet")
        return lines
    lines.append(f"best: trial #{best['number']}, reward {best['reward']:.4f}, top-1 {best['accuracy']:.2%}, "
                 f"{best['latency_ms']:.3f} ms ({best['latency_source']}), {best['mmacs']:.2f} M MACs, "
                 f"{best['params']:,} params")
    lines.append(f"      {best['arch']}")
    return lines
