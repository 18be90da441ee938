"""The paper's experiments, each one call: AKD against NAS (Table 5, Eq. 1) and two teachers (Fig. 6).

:func:`run_relative_gain`, per seed:

1. runs two searches that differ only in where a child's accuracy comes from — ``<prefix>-s<seed>-akd``
   (distilled from the teacher) and ``<prefix>-s<seed>-nas`` (hard labels) — with the same seed, hence
   the same initial controller, and the same target, budget, data and proxy training;
2. picks from each the child with the highest reward among those within ``tolerance`` of the target
   (:func:`pick_near_target`);
3. trains each pick in full twice, with KD and with hard labels (:func:`search.final.export_trial`),
   and scores the exported ``.tflite`` on the test split (mini-val by the Keras model if the data set
   has no test split); when both searches picked the same architecture its two students serve both
   rows, since the same seed trains it identically;
4. fills the 2x2 table and its relative gain (:func:`search.analysis.relative_gain`).

Everything resumes: the searches through their runs, each training through its JSON record next to
its ``.tflite`` (a finished one is read back, not retrained). The result is written as
``relative_gain.json`` and ``relative_gain.md`` in the output directory, with a report comparing the
first seed's two searches in its ``report`` directory.

:func:`run_teachers` runs one AKD search per teacher with the same seed and data, then writes a
comparison report (overlaid PCA, difference heatmap) with :func:`search.report.write_report`.

:func:`run_strategies` compares the two ways to find a student for one teacher, data and latency
target: a subgraph run (carved out of the teacher), an AKD search and a NAS search, their picks each
trained with KD, exported and measured the same way, as one table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from akd_tf.errors import InvalidInput, MissingData
from latency_db.store import Store
from search import analysis, runs
from search.checks import check_int, check_number
from search.config import SearchConfig
from search.report import write_report
from search.rewards import COST_TARGET_OPTION, get_reward

ARM_SOURCES = dict(zip(analysis.ARMS, ("kd", "label")))  # search arm -> where its children's accuracy comes from
ARM_TITLES = {"akd": "AKD (searched with KD)", "nas": "NAS (searched with labels)"}
TRAINING_TITLES = {"kd": "trained with KD", "label": "trained with labels"}
COST_UNITS = {"latency_ms": "ms", "mmacs": "M MACs"}


@dataclass(frozen=True)
class RelativeGainPlan:
    """The experiment's own settings; everything else comes from the base :class:`SearchConfig`."""

    prefix: str
    seeds: tuple[int, ...] = (0,)
    epochs: int = 30
    tolerance: float = 0.1  # a pick's cost must lie within target * (1 +- tolerance)

    def validate(self, base: SearchConfig) -> None:
        if not self.seeds:
            raise InvalidInput("give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise InvalidInput(f"seeds must differ, got {list(self.seeds)}")
        for seed in self.seeds:
            check_int("seed", seed, 0)
        check_int("epochs", self.epochs, 1)
        check_number("tolerance", self.tolerance, 0.0, low_open=True)
        if not base.teachers:
            raise InvalidInput("the relative gain needs a teacher (--teacher): AKD distills from it and both picks "
                               "are trained with KD from it")
        if get_reward(base.reward).cost is None:
            raise InvalidInput(f"reward {base.reward!r} has no cost target, so no child is 'near the target'; use "
                               f"mnas-soft, mnas-hard or flops")
        for seed in self.seeds:
            for arm in ARM_SOURCES:
                arm_config(base, self.prefix, seed, arm).validate()


def arm_config(base: SearchConfig, prefix: str, seed: int, arm: str) -> SearchConfig:
    """The search of one arm (``akd`` or ``nas``) for one seed: ``base`` with its name, accuracy source and seed."""
    return replace(base, name=f"{prefix}-s{seed}-{arm}", reward_source=ARM_SOURCES[arm], seed=seed)


def pick_near_target(store: Store, run_name: str, tolerance: float) -> dict:
    """The finished child of ``run_name`` with the highest reward whose cost (latency or MACs, as the run's
    reward weighs) lies within ``target * (1 +- tolerance)``; ``ValueError`` naming the nearest otherwise."""
    summary = runs.run_status(store, run_name)
    cost = get_reward(summary["reward"]).cost
    if cost is None:
        raise InvalidInput(f"run {run_name!r} uses reward {summary['reward']!r}, which has no target")
    target = summary[COST_TARGET_OPTION[cost]]
    low, high = target * (1 - tolerance), target * (1 + tolerance)
    run = runs.get_run(store, run_name)
    done = [runs.trial_dict(t) for t in runs.all_trials(store, run.id) if t.status == "done"]
    near = [t for t in done if t[cost] is not None and low <= t[cost] <= high]
    if near:
        return max(near, key=lambda t: (t["reward"], -t["number"]))
    unit = COST_UNITS[cost]
    if not done:
        raise MissingData(f"run {run_name!r} has no finished child")
    nearest = min(done, key=lambda t: abs(t[cost] - target))
    raise InvalidInput(f"no finished child of {run_name!r} lies within ±{tolerance:.0%} of the target {target:g} "
                       f"{unit} ({low:.4g}-{high:.4g} {unit}); the nearest is #{nearest['number']} at "
                       f"{nearest[cost]:.4g} {unit}: widen --tolerance or give the searches more --trials")


def _record_matches(path: Path, expected: dict) -> dict | None:
    """The stored training record at ``path`` if it was made with ``expected``'s settings, else None."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if all(record.get(k) == v for k, v in expected.items()) else None


def _train_pick(store: Store, run_name: str, trial: dict, training: str, out: Path, *, epochs: int, quantize: str,
                seed: int, cache_dir, wait_timeout_s, say) -> dict:
    from search.final import export_trial

    expected = {"run": run_name, "trial": trial["number"], "arch": trial["arch"], "trained_with": training,
                "epochs": epochs, "quantize": quantize}
    record = _record_matches(out.with_suffix(".json"), expected)
    if record is not None:
        say(f"{out.name}: already trained ({_accuracy_text(record)}), reusing {out.with_suffix('.json')}")
        return record
    out.parent.mkdir(parents=True, exist_ok=True)
    record = export_trial(store, run_name, trial["number"], out, epochs=epochs, quantize=quantize,
                          train_with=training, seed=seed, cache_dir=cache_dir, wait_timeout_s=wait_timeout_s,
                          say=say).to_dict()
    say(f"{out.name}: {_accuracy_text(record)}")
    return record


def accuracy_of(record: dict) -> tuple[float, str]:
    """The figure the table uses for one trained student, and what it is."""
    if record["test_top1"] is not None:
        return record["test_top1"], f"test top-1 of the .tflite ({record['test_examples']:,} images)"
    return record["val_top1"], "mini-val top-1 of the Keras model (the data set has no test split)"


def _accuracy_text(record: dict) -> str:
    value, what = accuracy_of(record)
    return f"{value:.2%} {what}"


def run_relative_gain(store: Store, base: SearchConfig, plan: RelativeGainPlan, out_dir, *, executor=None,
                      cache_dir: str | None = None, wait_timeout_s: float | None = None, logdir: str | None = None,
                      allow_latency_change: bool = False,
                      on_event=None, say: Callable[[str], None] = lambda _m: None) -> dict:
    """Run (or resume) the relative-gain experiment; returns what ``relative_gain.json`` holds."""
    from search.loop import run_search

    plan.validate(base)
    for seed in plan.seeds:  # a stored run with other settings is refused now, not after hours of the others
        for arm in ARM_SOURCES:
            runs.check_resumable(store, arm_config(base, plan.prefix, seed, arm))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in plan.seeds:
        picks, table, records = {}, {}, {}
        for arm in ARM_SOURCES:
            config = arm_config(base, plan.prefix, seed, arm)
            say(f"== seed {seed}: {ARM_TITLES[arm]} search {config.name!r}")
            run_search(store, config, executor=executor, cache_dir=cache_dir, wait_timeout_s=wait_timeout_s,
                       logdir=logdir, allow_latency_change=allow_latency_change, on_event=on_event, say=say)
            picks[arm] = pick_near_target(store, config.name, plan.tolerance)
            say(f"{config.name}: picked #{picks[arm]['number']} (reward {picks[arm]['reward']:.4f}, "
                f"{picks[arm]['latency_ms']:.3f} ms): {picks[arm]['arch']}")
        for arm, pick in picks.items():
            if arm == "nas" and pick["arch"] == picks["akd"]["arch"]:
                say(f"== seed {seed}: both searches picked the same architecture; its students trained above "
                    f"serve for both rows (same seed, same training)")
                table["nas"], records["nas"] = dict(table["akd"]), records["akd"]
                continue
            run_name = arm_config(base, plan.prefix, seed, arm).name
            table[arm], records[arm] = {}, {}
            for training in analysis.TRAININGS:
                # named by trial too: a pick that changes (say, after more --trials) gets fresh files, and
                # never resumes another architecture's checkpoint
                out = out_dir / f"seed{seed}" / f"{arm}-t{pick['number']}-{training}.tflite"
                say(f"== seed {seed}: {ARM_TITLES[arm]} pick, {TRAINING_TITLES[training]}")
                record = _train_pick(store, run_name, pick, training, out, epochs=plan.epochs,
                                     quantize=base.quantization, seed=seed, cache_dir=cache_dir,
                                     wait_timeout_s=wait_timeout_s, say=say)
                table[arm][training] = accuracy_of(record)[0]
                records[arm][training] = record
        per_seed.append({"seed": seed, "table": table, "relative_gain": analysis.relative_gain(table),
                         "picks": picks, "students": records,
                         "accuracy": accuracy_of(records["akd"]["kd"])[1]})
    result = _result(base, plan, per_seed)
    (out_dir / "relative_gain.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "relative_gain.md").write_text("\n".join(relative_gain_lines(result)) + "\n")
    first = [arm_config(base, plan.prefix, plan.seeds[0], arm).name for arm in ARM_SOURCES]
    write_report(store, first[0], out_dir / "report", compare=first[1], say=say)
    return result


def _result(base: SearchConfig, plan: RelativeGainPlan, per_seed: list[dict]) -> dict:
    mean_table = {arm: {training: asdict(analysis.spread([s["table"][arm][training] for s in per_seed]))
                        for training in analysis.TRAININGS} for arm in ARM_SOURCES}
    return {
        "prefix": plan.prefix, "seeds": list(plan.seeds), "epochs": plan.epochs, "tolerance": plan.tolerance,
        "search": {k: v for k, v in base.to_dict().items() if k not in ("name", "reward_source", "seed")},
        "per_seed": per_seed, "table": mean_table,
        "relative_gain": asdict(analysis.spread([s["relative_gain"] for s in per_seed])),
    }


def relative_gain_lines(result: dict) -> list[str]:
    """The 2x2 table and Eq. 1 as Markdown lines (what the command prints and ``relative_gain.md`` holds)."""
    search = result["search"]
    cost = get_reward(search["reward"]).cost
    target = f"{search[COST_TARGET_OPTION[cost]]:g} {COST_UNITS[cost]}"
    seeds = result["seeds"]
    lines = [f"Relative gain of AKD over NAS: {search['trials']} children per search, target {target} on "
             f"{search['device']!r}, picks within ±{result['tolerance']:.0%}, trained {result['epochs']} epochs; "
             f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}",
             f"accuracy: {result['per_seed'][0]['accuracy']}", "",
             "| searched by | trained with labels | trained with KD | KD - labels |",
             "|---|---:|---:|---:|"]
    for arm in ARM_SOURCES:
        cells = result["table"][arm]
        gains = analysis.spread([s["table"][arm]["kd"] - s["table"][arm]["label"] for s in result["per_seed"]])
        lines.append(f"| {ARM_TITLES[arm]} | {_cell(cells['label'])} | {_cell(cells['kd'])} | "
                     f"{gains.describe(100, ' pt').replace(' (1 seed)', '')} |")
    gain = analysis.Spread(**result["relative_gain"])
    lines += ["", f"relative gain [KD(AKD) - CLS(AKD)] - [KD(NAS) - CLS(NAS)] = {gain.describe(100, ' pt')}"]
    if len(seeds) > 1:
        lines.append("per seed: " + ", ".join(f"seed {s['seed']} {100 * s['relative_gain']:+.2f} pt"
                                              for s in result["per_seed"]))
    for s in result["per_seed"]:
        for arm, pick in s["picks"].items():
            lines.append(f"seed {s['seed']} {arm} pick: #{pick['number']} {pick['latency_ms']:.3f} ms "
                         f"{pick['mmacs']:.2f} M MACs `{pick['arch']}`")
    same = [s["seed"] for s in result["per_seed"] if s["picks"]["akd"]["arch"] == s["picks"]["nas"]["arch"]]
    if same:
        lines.append(f"note: with seed{'s' if len(same) > 1 else ''} {', '.join(map(str, same))} both searches "
                     f"picked the same architecture, so the relative gain there only measures training noise; "
                     f"give the searches more --trials")
    return lines


def _cell(spread: dict) -> str:
    if spread["std"] is None:
        return f"{100 * spread['mean']:.2f}%"
    return f"{100 * spread['mean']:.2f} ± {100 * spread['std']:.2f}%"


def teacher_configs(base: SearchConfig, teachers: tuple[tuple[str, ...], tuple[str, ...]],
                    prefix: str) -> list[SearchConfig]:
    """The two validated searches of :func:`run_teachers`: ``base`` distilled from each teacher."""
    if len(teachers) != 2 or not all(teachers):
        raise InvalidInput(f"the teachers experiment compares exactly two teachers, got {len(teachers)}")
    if teachers[0] == teachers[1]:
        raise InvalidInput(f"the two teachers are the same file(s): {', '.join(teachers[0])}")
    configs = [replace(base, name=f"{prefix}-t{i}", reward_source="kd", teachers=tuple(paths))
               for i, paths in enumerate(teachers, start=1)]
    for config in configs:
        config.validate()
    return configs


def run_teachers(store: Store, base: SearchConfig, teachers: tuple[tuple[str, ...], tuple[str, ...]], prefix: str,
                 out_dir, *, executor=None, cache_dir: str | None = None, wait_timeout_s: float | None = None,
                 logdir: str | None = None, allow_latency_change: bool = False,
                 heatmap_k: int = 20, latency_range: tuple[float, float] | None = None, on_event=None,
                 say: Callable[[str], None] = lambda _m: None):
    """One AKD search per teacher (``<prefix>-t1``, ``<prefix>-t2``), same seed and data; then the comparison
    report (overlaid PCA, difference heatmap t1 minus t2). Returns the :class:`search.report.Report`."""
    from search.loop import run_search

    configs = teacher_configs(base, teachers, prefix)
    for config in configs:
        runs.check_resumable(store, config)
    for config in configs:
        say(f"== teacher {', '.join(config.teachers)}: search {config.name!r}")
        run_search(store, config, executor=executor, cache_dir=cache_dir, wait_timeout_s=wait_timeout_s,
                   logdir=logdir, allow_latency_change=allow_latency_change, on_event=on_event, say=say)
    return write_report(store, configs[0].name, out_dir, compare=configs[1].name, heatmap_k=heatmap_k,
                        latency_range=latency_range, say=say)


# --- two strategies against each other ---------------------------------------------------------------------

STRATEGY_ARMS = ("subgraph", "akd", "nas")
STRATEGY_TITLES = {"subgraph": "subgraph (carved out of the teacher)", "akd": "AKD search (children distilled)",
                   "nas": "NAS search (children on labels)"}


def strategy_config(base: SearchConfig, prefix: str, arm: str) -> SearchConfig:
    """The search of one arm of :func:`run_strategies`: ``base`` as a subgraph run, an AKD or a NAS search."""
    from search.config import SUBGRAPH_CONTROLLER, SUBGRAPH_SPACE

    name = f"{prefix}-{arm}"
    if arm == "subgraph":
        return replace(base, name=name, strategy="subgraph", space=SUBGRAPH_SPACE, controller=SUBGRAPH_CONTROLLER,
                       controller_options={}, measure=True, mix_latency=False, early_stop=None, reward_source="kd")
    return replace(base, name=name, strategy="akd", reward_source="kd" if arm == "akd" else "label")


def search_compute_hours(store: Store, run_name: str) -> float:
    """Hours of child training and measuring a run's trials took, summed (a reused child counts nothing)."""
    run = runs.get_run(store, run_name)
    return sum((t.train_seconds or 0.0) + (t.latency_seconds or 0.0) for t in runs.all_trials(store, run.id)
               if t.reused_from is None) / 3600.0


def run_strategies(store: Store, base: SearchConfig, prefix: str, out_dir, *, epochs: int = 30,
                   tolerance: float = 0.1, executor=None, cache_dir: str | None = None,
                   wait_timeout_s: float | None = None, on_event=None,
                   say: Callable[[str], None] = lambda _m: None) -> dict:
    """For one teacher, data and latency target: the subgraph student, the AKD-search student and the NAS
    student, each the best-reward child of its run within ``tolerance`` of the target, each trained
    ``epochs`` with KD from the teacher, exported and measured the same way (:func:`search.final.export_trial`).
    Writes ``strategies.json`` and ``strategies.md`` to ``out_dir``; returns what the JSON holds."""
    from search.loop import run_search
    from search.subgraph import run_subgraph_search

    check_int("epochs", epochs, 1)
    check_number("tolerance", tolerance, 0.0, low_open=True)
    configs = {arm: strategy_config(base, prefix, arm) for arm in STRATEGY_ARMS}
    for config in configs.values():
        config.validate()
        runs.check_resumable(store, config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for arm, config in configs.items():
        say(f"== {STRATEGY_TITLES[arm]}: search {config.name!r}")
        if arm == "subgraph":
            run_subgraph_search(store, config, cache_dir=cache_dir, wait_timeout_s=wait_timeout_s, say=say)
        else:
            run_search(store, config, executor=executor, cache_dir=cache_dir, wait_timeout_s=wait_timeout_s,
                       on_event=on_event, say=say)
    picks = {arm: pick_near_target(store, config.name, tolerance) for arm, config in configs.items()}  # all first
    for arm, config in configs.items():
        pick = picks[arm]
        say(f"== {STRATEGY_TITLES[arm]}: #{pick['number']} ({pick['latency_ms']:.3f} ms), trained with KD")
        record = _train_pick(store, config.name, pick, "kd", out_dir / f"{arm}-t{pick['number']}.tflite",
                             epochs=epochs, quantize=base.quantization, seed=base.seed, cache_dir=cache_dir,
                             wait_timeout_s=wait_timeout_s, say=say)
        accuracy, what = accuracy_of(record)
        rows[arm] = {"run": config.name, "trial": pick["number"], "arch": pick["arch"], "accuracy": accuracy,
                     "accuracy_is": what, "latency_ms": record["latency_ms"], "size_bytes": record["size_bytes"],
                     "params": record["params"], "mmacs": record["mmacs"],
                     "search_hours": search_compute_hours(store, config.name),
                     "trials": runs.run_status(store, config.name)["trials"]["done"], "student": record}
    result = {"prefix": prefix, "target_ms": base.target_ms, "device": base.device, "epochs": epochs,
              "tolerance": tolerance, "search": {k: v for k, v in base.to_dict().items() if k != "name"},
              "rows": rows}
    (out_dir / "strategies.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "strategies.md").write_text("\n".join(strategies_lines(result)) + "\n")
    return result


def strategies_lines(result: dict) -> list[str]:
    """The three students as a Markdown table (what ``experiment strategies`` prints and writes)."""
    rows = result["rows"]
    first = next(iter(rows.values()))
    lines = [f"Strategies at {result['target_ms']:g} ms on {result['device']!r}: each pick within "
             f"±{result['tolerance']:.0%} of the target, trained {result['epochs']} epochs with KD, exported "
             f"({result['search']['quantization']}) and measured on the device",
             f"accuracy: {first['accuracy_is']}", "",
             "| strategy | accuracy | latency (ms) | size (KB) | params | M MACs | search (compute-h) | trials |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for arm, row in rows.items():
        lines.append(f"| {STRATEGY_TITLES[arm]} | {100 * row['accuracy']:.2f}% | {row['latency_ms']:.3f} | "
                     f"{row['size_bytes'] / 1024:.1f} | {row['params']:,} | {row['mmacs']:.2f} | "
                     f"{row['search_hours']:.2f} | {row['trials']} |")
    lines.append("")
    for arm, row in rows.items():
        lines.append(f"{arm}: run {row['run']!r} trial #{row['trial']} `{row['arch']}`")
    if "akd" in rows and "nas" in rows and rows["akd"]["arch"] == rows["nas"]["arch"]:
        lines.append("note: the AKD and NAS searches picked the same architecture, so their rows differ only by "
                     "training noise; give the searches more --trials")
    return lines
