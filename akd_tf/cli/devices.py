"""``akd-tf devices``: phones that measure latency (register, list, check, remove, serve jobs, emulate one)."""

from __future__ import annotations

import sys

import click

from akd_tf.cli.common import echo_json, open_store
from akd_tf.cli.options import bundle, db_option, json_option

adb_key_option = click.option(
    "--adb-key", type=click.Path(dir_okay=False), default=None,
    help="Private ADB key (default: $AKD_TF_ADB_KEY, else ~/.android/adbkey, generated if missing; the phone "
         "must accept its .pub).")


def _phone_limits(min_battery: float, cool_timeout: float, cool_to: float):
    from devicefarm.runner import PhoneLimits

    return PhoneLimits(cool_to_c=cool_to, cool_timeout_s=cool_timeout, min_battery_pct=min_battery)


# When a phone may be measured, as one ``limits`` (a devicefarm.runner.PhoneLimits).
limits_options = bundle("limits", [
    click.option("--min-battery", type=click.FloatRange(0, 100), default=20.0, show_default=True,
                 metavar="PERCENT", help="Refuse to measure a phone with less battery."),
    click.option("--cool-timeout", type=click.FloatRange(min=0), default=600.0, show_default=True,
                 metavar="SECONDS", help="Refuse to measure a phone still hotter after this long."),
    click.option("--cool-to", type=float, default=40.0, show_default=True, metavar="CELSIUS",
                 help="Wait before each run until every temperature reading is at or below this."),
], _phone_limits)


def _core_choice(_ctx, _param, value):
    if value == "auto" or value.isdigit():
        return value if value == "auto" else int(value)
    raise click.BadParameter(f"{value!r} is neither a core number nor 'auto'")


def _registered_phones(store) -> list[str]:
    from latency_db.devices import phone_names

    names = phone_names(store)
    if not names:
        raise click.ClickException("no phones registered; add one with `akd-tf devices register HOST:PORT`")
    return names


@click.group()
def devices():
    """Phones that measure latency: register, list, check, remove, serve jobs, emulate one."""


@devices.command("register")
@click.argument("address", metavar="SERIAL|HOST:PORT")
@click.option("--name", default=None, help="Name in the database (default: model and serial, e.g. pixel-4-9A1B).")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False), default=None,
              help="Android benchmark_model executable to install (not in any registry: TensorFlow's nightly "
                   "prebuilt or a bazel build; see README). Optional when the phone already has it.")
@click.option("--core", default="auto", show_default=True, callback=_core_choice,
              help="CPU core to pin benchmarks to; 'auto' picks the one with the highest max frequency.")
@click.option("--workdir", default="/data/local/tmp/akd-tf", show_default=True,
              help="Directory on the phone for the binary and models.")
@click.option("--auth-timeout", type=click.FloatRange(min=1), default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the phone's owner to accept this computer's key.")
@adb_key_option
@limits_options
@db_option
def devices_register(address, name, benchmark_binary, core, workdir, auth_timeout, adb_key, limits, db_url):
    """Connect to a phone over ADB, probe it, install benchmark_model, prove it runs, and store the phone."""
    from devicefarm.phones import register_phone

    registration = register_phone(
        open_store(db_url), address, name=name, benchmark_binary=benchmark_binary, core=core, key_path=adb_key,
        workdir=workdir, auth_timeout_s=auth_timeout, limits=limits,
        on_auth_prompt=lambda text: click.echo(f"waiting up to {auth_timeout:g} s: {text}", err=True),
        log=lambda text: click.echo(text, err=True))
    d = registration.device
    click.echo(f"registered {d.name}: {d.model} ({d.soc}, {d.os_version}) at {d.address}, core {d.core}, "
               f"probe model {registration.probe_latency_us:.0f} us")


@devices.command("list")
@db_option
@json_option
def devices_list(db_url, as_json):
    """Every device with its status, last contact and lease holder."""
    from akd_tf.tables import format_table
    from latency_db.devices import device_rows

    rows = device_rows(open_store(db_url))
    if as_json:
        echo_json(rows)
        return
    click.echo(format_table(rows, ["name", "kind", "model", "core", "status", "last_seen", "lease_holder",
                                   "address"], right_aligned=["core"]))


def _khz(value) -> str:
    return "?" if value is None else str(value)


def _health_line(h) -> str:
    if h.condition is None:
        return f"{h.name}: UNREACHABLE: {h.problems[0]}"
    battery, thermal, cpu = h.condition.battery, h.condition.thermal, h.condition.cpu
    clock = (f", core {cpu['core']} at {_khz(cpu['cur_freq_khz'])} kHz ({_khz(cpu['min_freq_khz'])}-"
             f"{_khz(cpu['max_freq_khz'])})") if cpu else ""
    return (f"{h.name}: {'ok' if h.healthy else 'UNHEALTHY'}: battery {battery.get('level_pct')}% "
            f"{battery.get('temperature_c')} °C, thermal {thermal.get('status_name', 'n/a')}, "
            f"hottest {h.condition.temperature_c:.1f} °C, governor {h.governor}{clock}"
            + "".join(f"\n  - {p}" for p in h.problems))


@devices.command("check")
@click.argument("name", required=False)
@adb_key_option
@limits_options
@db_option
@json_option
def devices_check(name, adb_key, limits, db_url, as_json):
    """Reachability, battery, temperature, thermal status, and the measuring core's governor and frequencies
    (kHz: current, then the governor's minimum-maximum) of NAME (default: every phone).

    Exits with status 1 if any checked phone is unreachable or unfit to measure.
    """
    from devicefarm.phones import check_phone

    store = open_store(db_url)
    names = [name] if name else _registered_phones(store)
    reports = [check_phone(store, n, key_path=adb_key, limits=limits) for n in names]
    if as_json:
        echo_json([h.to_dict() for h in reports])
    else:
        for h in reports:
            click.echo(_health_line(h))
    if not all(h.healthy for h in reports):
        sys.exit(1)


@devices.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete its stored measurements and table entries, or a lease.")
@db_option
def devices_remove(name, force, db_url):
    """Remove phone NAME from the database (host devices, 'local@HOST', stay)."""
    from devicefarm.phones import remove_device

    counts = remove_device(open_store(db_url), name, force=force)
    click.echo(f"removed {name} ({counts['measurements']} measurements, {counts['lut_entries']} table entries)")


@devices.command("serve")
@click.option("--device", "device_names", multiple=True,
              help="Phone to serve (repeatable), whether or not it answers now or another worker serves it "
                   "(each is checked and warned about). Default: every registered phone this host reaches "
                   "within --reach-timeout that no other live worker serves.")
@click.option("--reach-timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True, metavar="SECONDS",
              help="How long each registered phone gets to accept this host's connection and ADB key before it "
                   "counts as unreachable from here (all phones are tried at once).")
@click.option("--lease-seconds", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Lease length; renewed while a job runs, reclaimed by other workers if this one dies.")
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, show_default=True, metavar="SECONDS",
              help="How often an idle phone asks for work.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="Stop after this many jobs.")
@click.option("--idle-exit", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Stop once every phone has been idle this long (default: serve until Ctrl-C).")
@click.option("--fixed-performance/--no-fixed-performance", default=True, show_default=True,
              help="Measure in Android's fixed-performance mode (clocks held at a level the phone can sustain) "
                   "where the phone offers it, turned off again when the worker stops; a phone that refuses it "
                   "is measured without it, with a warning. Each measurement records whether it was on.")
@adb_key_option
@limits_options
@db_option
def devices_serve(device_names, reach_timeout, lease_seconds, poll, max_jobs, idle_exit, fixed_performance, adb_key,
                  limits, db_url):
    """Run a farm worker: lease measurement jobs for this host's phones, measure, store, repeat.

    Without --device it serves the registered phones this host reaches that no other worker serves, lists
    the phones it leaves out and why, and exits with status 1, naming each phone and its problem, when
    that leaves none. Each phone measurement is stored with battery, temperatures, and the measuring core's
    governor and frequencies, read before and after it."""
    from devicefarm.serving import plan_serving
    from devicefarm.worker import FarmWorker, WorkerOptions, default_worker_id

    store = open_store(db_url)
    worker_id = default_worker_id()
    if not device_names:
        click.echo(f"checking which registered phones this host reaches (up to {reach_timeout:g} s)", err=True)
    plan = plan_serving(store, list(device_names) or None, worker_id=worker_id, key_path=adb_key,
                        reach_timeout_s=reach_timeout)
    for note in plan.notes():
        click.echo(note, err=True)
    options = WorkerOptions(lease_seconds=lease_seconds, poll_s=poll, max_jobs=max_jobs, idle_exit_s=idle_exit,
                            limits=limits, fixed_performance=fixed_performance)
    worker = FarmWorker(store, plan.served, worker_id=worker_id, key_path=adb_key, options=options,
                        log=lambda t: click.echo(t, err=True))
    click.echo(f"worker {worker.worker_id} serving {', '.join(plan.served)} from {store.masked_url}", err=True)
    stats = worker.run()
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items()))
    jobs = f"{stats.handled} job{'' if stats.handled == 1 else 's'}"
    click.echo(f"handled {jobs}: {outcomes}" if outcomes else f"handled {jobs}")


@devices.command("jobs")
@click.option("--state", type=click.Choice(["queued", "leased", "done", "failed"]), default=None,
              help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most recent jobs shown.")
@db_option
@json_option
def devices_jobs(state, limit, db_url, as_json):
    """The farm's job queue: counts per state, then the most recent jobs."""
    from akd_tf.tables import format_table
    from latency_db import jobs

    summary, rows = jobs.job_table(open_store(db_url), state=state, limit=limit)
    if as_json:
        echo_json({"summary": summary, "jobs": rows})
        return
    click.echo(", ".join(f"{k} {v}" for k, v in summary.items()))
    if rows:
        click.echo(format_table(rows, ["id", "kind", "state", "pool", "attempts", "lease_holder", "error"],
                                right_aligned=["id", "attempts"]))


@devices.command("emulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it loopback).")
@click.option("--port", default=5555, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port, printed at start).")
@click.option("--model", "profile", default="pixel4", show_default=True,
              type=click.Choice(["pixel3", "pixel4", "pixel6"]), help="Phone profile: CPU topology, SoC, thermals.")
@click.option("--bm-format", type=click.Choice(["recent", "older", "oldest"]), default="recent", show_default=True,
              help="Which release's output format the emulated benchmark_model prints.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the phone's file system and accepted keys (default: a temporary one).")
@click.option("--reject-keys", is_flag=True, help="Leave new host keys unaccepted (as if nobody taps 'Allow').")
@click.option("--refuse-fixed-performance", is_flag=True,
              help="Emulate a phone whose power HAL lacks fixed-performance mode (`cmd power` refuses it).")
@bundle("faults", [
    click.option("--temperature", "temperature_c", type=float, default=None, metavar="CELSIUS",
                 help="Pin every temperature reading (e.g. to try how a hot phone is refused)."),
    click.option("--battery", "battery_level", type=click.IntRange(0, 100), default=None, metavar="PERCENT",
                 help="Pin the battery level."),
])
def devices_emulate(host, port, profile, bm_format, state_dir, reject_keys, refuse_fixed_performance, faults):
    """Run an emulated phone: an ADB daemon speaking the real wire protocol whose benchmark_model really runs
    the pushed .tflite on this host. Android's adb works against it too; its shell takes pipes, redirections,
    for loops, $((...)) and ls -l, and refuses other forms naming the ones it takes (see docs/device-farm.md).
    Stop it with Ctrl-C."""
    import dataclasses
    import time

    from devicefarm.emulator import PROFILES, EmulatedPhone, Faults

    phone_profile = dataclasses.replace(PROFILES[profile], fixed_performance_mode=not refuse_fixed_performance)
    phone = EmulatedPhone(phone_profile, host=host, port=port, state_dir=state_dir, accept_new_keys=not reject_keys,
                          faults=Faults(**faults), bm_format=bm_format).start()
    click.echo(f"emulated {phone.profile.model} (serial {phone.serial}) listening on {phone.address}")
    click.echo(f"register it with: akd-tf devices register {phone.address} --benchmark-binary \"$(type -P true)\"")
    click.echo("(the emulated phone runs its own benchmark_model for whatever file is installed)")
    click.echo(f"look around with Android's adb: adb connect {phone.address} && adb -s {phone.address} shell "
               "'ls -l /data/local/tmp'")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        phone.stop()
