"""``akd-tf db`` and ``akd-tf latency``: the latency database, its lookup table, calibration and queries."""

from __future__ import annotations

import os

import click

from akd_tf.benchmark import LATENCY_STATISTIC, latency_us
from akd_tf.cli.common import echo_json, open_store, parse_arch, progress_bar
from akd_tf.cli.options import (db_option, device_option, json_option, no_wait_option, space_option, table_option,
                                table_target_options, target_options, timing_options, wait_timeout_option)
from akd_tf.space import get_space
from akd_tf.target import QUANTIZATIONS


class FarmProgress:
    """A progress bar (:func:`akd_tf.cli.common.progress_bar`) for farm waits, opened on the first
    ``(done, failed, total)`` report."""

    def __init__(self, label: str):
        self.label, self.bar, self.shown = label, None, 0

    def __call__(self, done: int, failed: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(total, self.label)
            self.bar.__enter__()
        self.bar.update(done + failed - self.shown)
        self.shown = done + failed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _table_target(store, device_name: str, space, table: dict, table_id: int | None = None):
    """The shape and quantization a command works at: the options typed, the rest from the table version read."""
    from latency_db.tables import resolve_target

    return resolve_target(store, device_name, space, table_id=table_id, **table)


@click.group()
def db():
    """Manage the latency database."""


@db.command("upgrade")
@db_option
def db_upgrade(db_url):
    """Create the database or migrate it to the newest schema."""
    store = open_store(db_url)
    click.echo(f"{store.masked_url}: schema at revision {store.revision()}")


@click.group()
def latency():
    """Build latency lookup tables (a version per device, space version, runtime, threads and quantization),
    calibrate them, measure and query latencies."""


@latency.command("build-lut")
@device_option
@space_option
@target_options
@click.option("--dry-run", is_flag=True, help="List the keys (and which are missing) without measuring.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Measure at most this many missing keys.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Processes converting micro-models (default: one per core; 0: convert in this process). On "
                   "this host a chunk of keys is converted before it is timed, so no conversion runs during a "
                   "timing; for a phone, conversions run while earlier keys are queued.")
@no_wait_option
@wait_timeout_option
@db_option
def latency_build_lut(device_name, space_name, target, dry_run, limit, workers, no_wait, wait_timeout, db_url):
    """Measure every operator of the space on DEVICE and store it in the device's current table version for
    the space, runtime and threads (a new version after either changes; resumable: stored keys are skipped)."""
    from latency_db.lut import build_lut, plan_build

    store, space = open_store(db_url), get_space(space_name)
    plan = plan_build(store, device_name, space, target)
    operators, missing = plan.operators, plan.missing
    shape = f"{target.resolution}x{target.resolution}x{target.channels}"
    version = "a new table" if plan.table_id is None else f"table #{plan.table_id}"
    click.echo(f"{len(operators)} keys for {space_name} at {shape}, {target.classes} classes, "
               f"{target.quantization}; {len(operators) - len(missing)} stored on {device_name} in {version} "
               f"({plan.identity.describe()}), {len(missing)} missing")
    if dry_run:
        stored = {op.key for op in operators} - {op.key for op in missing}
        for op in operators:
            click.echo(f"{'stored ' if op.key in stored else 'missing'}  {op.key}")
        return
    todo = len(missing) if limit is None else min(limit, len(missing))
    if workers is None:
        workers = len(os.sched_getaffinity(0))
    with FarmProgress("measured on the farm") as farm_bar:
        with progress_bar(todo, "measuring or queuing", item_show_func=lambda op: op.key if op else None) as bar:
            summary = build_lut(store, device_name, space, target, limit=limit, workers=workers,
                                progress=lambda op: bar.update(1, op), wait=not no_wait,
                                wait_timeout_s=wait_timeout, wait_progress=farm_bar)
    if summary.queued and no_wait:
        click.echo(f"queued {summary.queued} jobs for {device_name}; `akd-tf devices serve` measures them")
        return
    click.echo(f"measured {summary.measured} keys in {summary.seconds:.1f} s; "
               f"{summary.already_stored + summary.measured} of {summary.total} now stored in table "
               f"#{summary.table_id}")


@latency.command("measure")
@click.option("--arch", "arch_text", required=True, metavar="ARCH", help="Architecture to measure end to end.")
@device_option
@space_option
@table_target_options
@timing_options
@click.option("--tries", default=1, show_default=True, type=click.IntRange(min=1),
              help="Measure the exported model this many times and report whether the tries agree within 5% "
                   "(MLPerf Mobile's rule is 5 tries).")
@no_wait_option
@wait_timeout_option
@db_option
@json_option
def latency_measure(arch_text, device_name, space_name, table, settings, tries, no_wait, wait_timeout, db_url,
                    as_json):
    """Export ARCH, measure the whole model on DEVICE and store the measurement."""
    import uuid

    from latency_db.measure import measure_arch, submit_arch

    a = parse_arch(space_name, arch_text, "'--arch'")
    if tries > 1 and no_wait:
        raise click.UsageError("--tries compares measurements as they finish: drop --no-wait")
    store = open_store(db_url)
    target = _table_target(store, device_name, a.space, table)
    if tries > 1:
        return _measure_tries(store, device_name, a, target, settings, tries, wait_timeout, as_json)
    if no_wait:
        job = submit_arch(store, device_name, a, target, settings=settings, run_key=uuid.uuid4().hex)
        record = {"job": job.job_id, "run_key": job.run_key, "device": device_name, "arch": a.to_string()}
        if as_json:
            echo_json(record)
        else:
            click.echo(f"queued job #{job.job_id} (run key {job.run_key}) on {device_name}")
        return
    row = measure_arch(store, device_name, a, target, settings=settings, wait_timeout_s=wait_timeout)
    record = {"measurement": row.id, "device": device_name, "arch": a.to_string(),
              "latency_ms": latency_us(row) / 1000, "statistic": LATENCY_STATISTIC.removesuffix("_us"),
              "median_ms": row.median_us / 1000, "mean_ms": row.mean_us / 1000, "std_ms": row.std_us / 1000,
              "count": row.count}
    if as_json:
        echo_json(record)
    else:
        click.echo(f"measurement #{row.id} on {device_name}: {_measured(row)}")


def _measured(row) -> str:
    """``"0.412 ms (min of 2428 runs; median 0.415, mean 0.418, std 0.011)"``: the latency and the rest."""
    statistic = LATENCY_STATISTIC.removesuffix("_us")
    return (f"{latency_us(row) / 1000:.3f} ms ({statistic} of {row.count} runs; median {row.median_us / 1000:.3f}, "
            f"mean {row.mean_us / 1000:.3f}, std {row.std_us / 1000:.3f})")


def _measure_tries(store, device_name, arch, target, settings, tries, wait_timeout, as_json) -> None:
    from latency_db.reproducibility import AGREEMENT, measure_tries

    def show(number, row):
        if not as_json:
            click.echo(f"try {number}: measurement #{row.id}: {_measured(row)}")

    result = measure_tries(store, device_name, arch, target, tries, settings=settings, wait_timeout_s=wait_timeout,
                           on_try=show)
    if as_json:
        echo_json({"device": device_name, "arch": arch.to_string(), **result.to_dict()})
        return
    verdict = "agree" if result.agree else "do NOT agree"
    click.echo(f"{tries} tries on {device_name}: latencies {min(result.latencies_ms):.3f}-"
               f"{max(result.latencies_ms):.3f} ms, spread {result.spread:.1%} (max/min - 1): they {verdict} within "
               f"{AGREEMENT:.0%}")


@latency.command("calibrate")
@device_option
@click.option("--n", "n_fit", default=60, show_default=True, type=click.IntRange(min=1),
              help="Archs measured end to end to fit the corrections (at least 30), chosen where the predictor is "
                   "least certain or most wrong (adaptive sampling).")
@click.option("--holdout", default=20, show_default=True, type=click.IntRange(min=1),
              help="Random archs measured to judge each correction (at least 10), never used for fitting.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random archs.")
@space_option
@table_target_options
@table_option
@timing_options
@wait_timeout_option
@db_option
def latency_calibrate(device_name, n_fit, holdout, seed, space_name, table, table_id, settings, wait_timeout, db_url):
    """Fit the corrections of DEVICE's table sum (linear, and LightGBM on the architecture's features), report
    each one's accuracy on held-out archs and use the best; they belong to the table version read and are used
    only with it.

    An interrupted calibration run again with the same options measures only what it lacks."""
    from latency_db.calibrate import MIN_FIT, MIN_HOLDOUT, calibrate

    if n_fit < MIN_FIT:
        raise click.BadParameter(f"needs at least {MIN_FIT} archs, got {n_fit}", param_hint="'--n'")
    if holdout < MIN_HOLDOUT:
        raise click.BadParameter(f"needs at least {MIN_HOLDOUT} archs, got {holdout}", param_hint="'--holdout'")
    store, space = open_store(db_url), get_space(space_name)
    target = _table_target(store, device_name, space, table, table_id)
    with progress_bar(n_fit + holdout, "measuring archs") as bar:
        report = calibrate(store, device_name, space, target, n_fit, holdout=holdout, seed=seed, settings=settings,
                           progress=lambda _arch: bar.update(1), wait_timeout_s=wait_timeout, table_id=table_id)
    click.echo(f"measured {report.n_fit} fit and {report.uncalibrated.n} held-out archs for table #{report.table_id} "
               f"({report.measuring_s / 60:.1f} min of exporting and measuring)")
    click.echo(f"raw LUT sum        {report.uncalibrated.summary()}")
    for result in report.methods:
        mark = "used" if result.accepted else "not used"
        click.echo(f"calibration #{result.calibration_id} {result.method:<8} {result.accuracy.summary()} [{mark}]")
    if report.chosen is None:
        click.echo(f"not used: no correction's RMSPE on the held-out archs is below the raw table sum's "
                   f"{report.uncalibrated.rmspe:.2f}%; predictions keep the raw sum (or the newest accepted "
                   f"calibration)")


def _archs_to_query(space_name: str, arch_text: str | None, arch_file) -> list:
    """The architectures of --arch or of each non-empty line of --file; a bad one names its line."""
    if (arch_text is None) == (arch_file is None):
        raise click.UsageError("give exactly one of --arch or --file")
    texts = [arch_text] if arch_text else [line.strip() for line in arch_file if line.strip()]
    archs = []
    for number, text in enumerate(texts, start=1):
        archs.append(parse_arch(space_name, text, "--arch" if arch_text else f"line {number}"))
    return archs


@latency.command("query")
@click.option("--arch", "arch_text", default=None, metavar="ARCH", help="One architecture.")
@click.option("--file", "arch_file", type=click.File("r"), default=None,
              help="A file of architectures, one canonical string per line ('-' for stdin).")
@device_option
@space_option
@table_target_options
@table_option
@click.option("--price-missing", is_flag=True,
              help="Price the operators the table version never measured (another resolution or class count) "
                   "with its kernel model (`akd-tf latency fit-kernels`) instead of failing on them. Such an answer "
                   "says how many operators were priced, is the raw sum (never calibrated) and flags priced "
                   "operators outside the kernel model's fitted region.")
@db_option
@json_option
def latency_query(arch_text, arch_file, device_name, space_name, table, table_id, price_missing, db_url, as_json):
    """Latency in ms of each architecture: measured if stored, else predicted from one version of the lookup
    table (the device's current one, or --table). Reads only."""
    from latency_db.query import query_latency

    archs = _archs_to_query(space_name, arch_text, arch_file)
    store, space = open_store(db_url), get_space(space_name)
    target = _table_target(store, device_name, space, table, table_id)
    estimates = query_latency(store, device_name, space, archs, target, table_id=table_id,
                              price_missing=price_missing)
    if as_json:
        echo_json([e.to_dict() for e in estimates])
        return
    for e in estimates:
        priced = f" ({e.kernel_priced} of {e.operators} operators priced)" if e.kernel_priced else ""
        click.echo(f"{e.latency_ms:9.3f} ms  {e.source:<9}  {e.arch}{priced}  [{e.detail}]")
        if e.outside_region:
            region = "the kernel model's" if e.kernel_priced else "the calibration's"
            click.echo(f"{'':12}  outside {region} region, an extrapolation: {e.outside_region}")


@latency.command("fit-kernels")
@device_option
@space_option
@click.option("--quantize", "quantization", type=click.Choice(QUANTIZATIONS), default=None,
              help="Quantization of the table version to fit (default: --table's, else none).")
@table_option
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the model's trees.")
@db_option
@json_option
def latency_fit_kernels(device_name, space_name, quantization, table_id, seed, db_url, as_json):
    """Fit and store the kernel model of DEVICE's table version (the current one, or --table) on its measured
    entries: it prices, for `latency query --price-missing`, the operators of shapes the version never
    measured. With entries at two resolutions or more, reports its accuracy per entry on the largest
    resolution's entries priced by a model fitted without them. Measures nothing."""
    from latency_db.kernel_pricing import fit_table_kernel_model

    store, space = open_store(db_url), get_space(space_name)
    report = fit_table_kernel_model(store, device_name, space, quantization=quantization, table_id=table_id,
                                    seed=seed)
    held = report.held_out
    if as_json:
        echo_json({"kernel_model": report.kernel_model_id, "table": report.table_id, "entries": report.n_entries,
                   "shapes": report.shapes, "unmatched_entries": report.unmatched, "fit_s": report.fit_s,
                   "held_out": None if held is None else {"what": held.describe(), **held.accuracy.to_dict()}})
        return
    unmatched = f"; {report.unmatched} entries of no {space.name} operator ignored" if report.unmatched else ""
    click.echo(f"kernel model #{report.kernel_model_id} of table #{report.table_id}: fitted on {report.n_entries} "
               f"entries ({report.shapes}) in {report.fit_s:.1f} s{unmatched}")
    if held is None:
        click.echo("no held-out accuracy: the table holds one input resolution (build another to judge how "
                   "its prices extrapolate)")
    else:
        accuracy = held.accuracy
        click.echo(f"per entry on {held.describe()}: {accuracy.within_10_pct:.1%} within +-10%, "
                   f"{accuracy.within_5_pct:.1%} within +-5%, RMSPE {accuracy.rmspe:.2f}%")


LIST_COLUMNS = ["table", "device", "space", "runtime", "threads", "quantization", "shapes", "entries",
                "measured", "calibrations", "built", "current"]


@latency.command("list")
@click.option("--device", "device_name", default=None,
              help="Only this device's versions ('local': this host's; default: every device's).")
@db_option
@json_option
def latency_list(device_name, db_url, as_json):
    """Every latency table version: its device, space@version, runtime, threads, quantization, shapes, entries,
    'measured' (architectures measured whole on its device under its runtime, threads and quantization, at any
    shape; a calibration of it reuses those at its shape), calibrations, when it was begun, and '*' on each
    device's current versions. Reads only."""
    from akd_tf.tables import format_table
    from latency_db.tables import table_versions

    rows = table_versions(open_store(db_url), device_name)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no latency tables; build one with `akd-tf latency build-lut`")
        return
    click.echo(format_table([{**row, "current": "*" if row["current"] else ""} for row in rows], LIST_COLUMNS,
                            right_aligned=["table", "threads", "entries", "measured", "calibrations"]))


@latency.command("export")
@device_option
@click.option("--table", "table_id", type=click.IntRange(min=1), default=None, metavar="ID",
              help="Only this table version (default: every version of the device).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="File to write ('-' for stdout).")
@db_option
def latency_export(device_name, table_id, fmt, out, db_url):
    """Write DEVICE's lookup table versions, each with its identity, to a CSV or JSON file others can import."""
    from latency_db.exchange import export_table

    text = export_table(open_store(db_url), device_name, fmt, table_id)
    if out == "-":
        click.echo(text, nl=False)
    else:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {out}")


@latency.command("import")
@click.argument("path", type=click.Path())
@click.option("--device", "device_name", default=None,
              help="Device to import into (default: the one named in a JSON file; required for CSV).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
              help="File format (default: from the file suffix).")
@db_option
def latency_import(path, device_name, fmt, db_url):
    """Import the table versions of a file written by `akd-tf latency export` into the same versions of a device
    (one transaction; re-import adds nothing)."""
    from latency_db.exchange import import_table

    added, skipped = import_table(open_store(db_url), path, device_name, fmt)
    click.echo(f"imported {added} entries, {skipped} already present")
