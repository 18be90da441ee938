"""The emulated phone's shell, commands, heat model and benchmark-tool formatting, without a connection."""

import dataclasses
import hashlib
import os
import re
import shlex

import pytest

from devicefarm.emulator.benchmark_tool import stats_line
from devicefarm.emulator.devicetree import cpu_list, populate
from devicefarm.emulator.faults import Faults
from devicefarm.emulator.profiles import PROFILES
from devicefarm.emulator.sandbox import Sandbox, SandboxError
from devicefarm.emulator.shell import CollectedOutput, PhoneShell
from devicefarm.emulator.shell_syntax import Command, ShellSyntaxError, Word, parse
from devicefarm.emulator.state import PhoneState
from devicefarm.emulator.thermal import ThermalModel

PIXEL4 = PROFILES["pixel4"]
TMP = "/data/local/tmp"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def state(tmp_path, clock):
    root = tmp_path / "root"
    root.mkdir()
    populate(root, PIXEL4)
    return PhoneState(PIXEL4, "EMUTEST", Sandbox(root), Faults(), "recent", ThermalModel(PIXEL4, clock))


def sh(state, line):
    out = CollectedOutput()
    status = PhoneShell(state).run(line, out)
    return out.text, status


def test_parse_splits_on_unquoted_separators_only():
    assert parse("echo 'a;b' \\; \"c&&d\";ls||x && y") == [
        Command(";", (Word("echo"), Word("a;b"), Word(";"), Word("c&&d"))),
        Command(";", (Word("ls"),)), Command("||", (Word("x"),)), Command("&&", (Word("y"),))]
    assert parse("echo $? '$?' \"<$?>\"") == [
        Command(";", (Word("echo"), Word("$?", (0,)), Word("$?"), Word("<$?>", (1,))))]
    assert parse("") == [] and parse("true;") == [Command(";", (Word("true"),))]
    assert Word("a$?b$?", (1, 4)).expand(127) == "a127b127"


@pytest.mark.parametrize("line, message", [
    ("cat /proc/cpuinfo | head", "unsupported syntax: '|'"),
    ("echo hi > /data/local/tmp/x", "unsupported syntax: '>'"),
    ("sleep 1 &", "unsupported syntax: '&'"),
    ("echo `id`", "unsupported syntax: '`'"),
    ("echo \"$(id)\"", "unsupported syntax: '$('"),
    ("echo $HOME", "unsupported syntax: '$H'"),
    ("ls /data/*", "unsupported syntax: glob '*' in '/data/*'"),
    ("echo a\necho b", "unsupported syntax: newline"),
    ("if true", "unsupported syntax: reserved word 'if'"),
    ("X=1 id", "unsupported syntax: variable assignment 'X=1'"),
    ("echo 'open", "syntax error: unterminated quoted string"),
    ("; id", "syntax error: ';' unexpected"),
    ("id &&", "syntax error: unexpected end of line after '&&'"),
])
def test_unsupported_syntax_is_refused_before_anything_runs(state, line, message):
    with pytest.raises(ShellSyntaxError, match=f"^{re.escape(message)}$"):
        parse(line)
    assert sh(state, "touch /data/local/tmp/ran; " + line) == (f"/system/bin/sh: {message}\n", 2)
    assert not (state.sandbox.root / "data/local/tmp/ran").exists()


def test_sequencing_and_exit_status(state):
    assert sh(state, "echo a;echo b") == ("a\nb\n", 0)
    assert sh(state, "false && echo no; echo $?") == ("1\n", 0)
    assert sh(state, "false || echo yes") == ("yes\n", 0)
    assert sh(state, "true || echo no; echo \"[$?]\" '$?'") == ("[0] $?\n", 0)
    assert sh(state, "false && echo a || echo b") == ("b\n", 0)
    assert sh(state, "nosuch; echo $?") == ("/system/bin/sh: nosuch: inaccessible or not found\n127\n", 0)
    assert sh(state, "nosuch") == ("/system/bin/sh: nosuch: inaccessible or not found\n", 127)
    assert sh(state, "echo -n x; echo") == ("x\n", 0)


def test_an_unquoted_semicolon_in_a_file_name_runs_a_second_command(state):
    listing = state.sandbox.root / TMP[1:]
    assert sh(state, f"touch {TMP}/a;touch {TMP}/b") == ("", 0)
    assert sorted(os.listdir(listing)) == ["a", "b"]
    assert sh(state, f"touch {shlex.quote(f'{TMP}/c;touch {TMP}/d')}") == (
        f"touch: '{TMP}/c;touch {TMP}/d': No such file or directory\n", 1)  # one path, directory "c;touch "
    assert sh(state, f"touch {shlex.quote(f'{TMP}/c;touch d')}") == ("", 0)
    assert sorted(os.listdir(listing)) == ["a", "b", "c;touch d"]


def test_file_commands(state):
    root = state.sandbox.root
    assert sh(state, f"mkdir {TMP}/d && mkdir {TMP}/d") == (f"mkdir: '{TMP}/d': File exists\n", 1)
    assert sh(state, f"mkdir {TMP}/x/y") == (f"mkdir: '{TMP}/x/y': No such file or directory\n", 1)
    assert sh(state, f"mkdir -p {TMP}/x/y && ls {TMP}/x") == ("y\n", 0)
    assert sh(state, "mkdir /sys/new") == ("mkdir: '/sys/new': Permission denied\n", 1)
    (root / "data/local/tmp/f").write_bytes(b"hello\n")
    assert sh(state, f"cat {TMP}/f {TMP}/none") == (f"hello\ncat: {TMP}/none: No such file or directory\n", 1)
    assert sh(state, f"sha256sum {TMP}/f") == (f"{hashlib.sha256(b'hello' + bytes([10])).hexdigest()}  {TMP}/f\n", 0)
    assert sh(state, f"chmod 640 {TMP}/f && stat -c '%a %s %n' {TMP}/f") == (f"640 6 {TMP}/f\n", 0)
    assert sh(state, f"chmod u+x,g=r {TMP}/f && stat -c %a {TMP}/f") == ("740\n", 0)
    assert sh(state, f"chmod a-rwx,u+rw {TMP}/f && stat -c %a {TMP}/f") == ("600\n", 0)
    assert sh(state, f"chmod 9x {TMP}/f") == ("chmod: bad mode '9x'\n", 1)
    assert sh(state, f"stat -c %Z {TMP}/f") == ("stat: unsupported format sequence '%Z'\n", 1)
    assert sh(state, f"ls {TMP}") == ("d\nf\nx\n", 0)
    assert sh(state, f"ls {TMP}/f /nothing") == (f"{TMP}/f\nls: /nothing: No such file or directory\n", 1)
    assert sh(state, f"rm {TMP}/x") == (f"rm: {TMP}/x: Is a directory\n", 1)
    assert sh(state, f"rm -rf {TMP}/x {TMP}/gone && rm {TMP}/f && ls {TMP}") == ("d\n", 0)
    assert sh(state, f"rm {TMP}/f") == (f"rm: {TMP}/f: No such file or directory\n", 1)
    assert sh(state, "rm /proc/cpuinfo") == ("rm: /proc/cpuinfo: Permission denied\n", 1)
    assert sh(state, "cat ../../etc/passwd") == ("cat: ../../etc/passwd: '..' leaves the root directory\n", 1)
    assert sh(state, "cat /sys/devices/system/cpu/possible /sys/devices/system/cpu/cpu4/cpufreq/cpuinfo_max_freq"
                     " /sys/devices/system/cpu/cpu7/cpufreq/scaling_governor") == ("0-7\n2419200\nschedutil\n", 0)
    assert sh(state, "uname -m; uname") == ("aarch64\nLinux\n", 0)
    assert sh(state, "getprop ro.product.model; getprop no.such.key; getprop no.such.key fallback") == (
        "Pixel 4\n\nfallback\n", 0)


def test_program_execution_rules(state):
    tool = state.sandbox.root / "data/local/tmp/benchmark_model"
    tool.write_bytes(b"\x7fELF")
    tool.chmod(0o644)
    assert sh(state, f"{TMP}/benchmark_model --help; echo $?") == (
        f"/system/bin/sh: {TMP}/benchmark_model: can't execute: Permission denied\n126\n", 0)
    assert sh(state, f"chmod +x {TMP}/benchmark_model && {TMP}/benchmark_model --bogus=1; echo $?") == (
        "ERROR: Unconsumed cmdline flags: --bogus=1\n1\n", 0)
    assert sh(state, f"{TMP}/benchmark_model --num_runs=many") == (
        "ERROR: Couldn't interpret value 'many' for flag num_runs.\n", 1)
    assert sh(state, f"{TMP}/benchmark_model --num_runs=0") == ("ERROR: num_runs must be an int >= 1, got 0\n", 1)
    assert sh(state, f"{TMP}/benchmark_model --num_runs=5") == (
        "ERROR: Please specify the name of your TF Lite input file with --graph\n", 1)
    text, status = sh(state, f"{TMP}/benchmark_model --help")
    assert status == 1 and text.startswith("ERROR: usage: benchmark_model\nFlags:\n\t--num_runs=50\tint32\toptional\t")
    assert "\t--num_threads=-1\tint32\toptional\tNum threads\n" in text and "\t--use_xnnpack=false\tbool\t" in text
    assert sh(state, f"{TMP}/benchmark_model --graph={TMP}/none.tflite") == (
        "INFO: STARTING!\nINFO: Log parameter values verbosely: [0]\nINFO: Graph: [/data/local/tmp/none.tflite]\n"
        f"ERROR: Could not open '{TMP}/none.tflite'.\nERROR: Failed to mmap model {TMP}/none.tflite\n", 1)
    (state.sandbox.root / "data/local/tmp/bad.tflite").write_bytes(b"\0" * 64)
    assert sh(state, f"{TMP}/benchmark_model --graph={TMP}/bad.tflite")[0].endswith(
        f"ERROR: {TMP}/bad.tflite: not a TFLite model (expected the file identifier TFL3 at byte 4, got "
        f"b'\\x00\\x00\\x00\\x00')\nERROR: Failed to mmap model {TMP}/bad.tflite\n")
    other = state.sandbox.root / "data/local/tmp/other_tool"
    other.write_bytes(b"\x7fELF")
    other.chmod(0o755)
    assert sh(state, f"{TMP}/other_tool") == (f"/system/bin/sh: {TMP}/other_tool: can't execute: Exec format error\n",
                                              126)
    assert sh(state, f"{TMP}") == (f"/system/bin/sh: {TMP}: can't execute: Is a directory\n", 126)
    assert sh(state, f"{TMP}/missing") == (f"/system/bin/sh: {TMP}/missing: inaccessible or not found\n", 127)


def test_taskset_checks_the_mask_and_logs_it(state):
    assert sh(state, "taskset 80 echo hi") == ("hi\n", 0)
    assert sh(state, "taskset 0x0f echo 'a b'") == ("a b\n", 0)
    assert sh(state, "taskset 100 echo hi") == ("taskset: sched_setaffinity: Invalid argument\n", 1)
    assert sh(state, "taskset 0 echo hi") == ("taskset: sched_setaffinity: Invalid argument\n", 1)
    assert sh(state, "taskset zz echo hi") == ("taskset: bad mask 'zz'\n", 1)
    assert sh(state, "taskset 80") == ("usage: taskset MASK COMMAND [ARGS...]\n", 1)
    assert state.taskset_log == [(0x80, "echo hi"), (0x0F, "echo 'a b'")]


def test_performance_mode_and_unknown_services(state):
    assert sh(state, "cmd power set-fixed-performance-mode-enabled true") == ("", 0)
    assert state.fixed_performance_mode is True
    assert sh(state, "cmd power set-fixed-performance-mode-enabled false") == ("", 0)
    assert state.fixed_performance_mode is False
    assert sh(state, "cmd power set-fixed-performance-mode-enabled maybe") == (
        "cmd power: unsupported arguments: set-fixed-performance-mode-enabled maybe (expected "
        "set-fixed-performance-mode-enabled true|false)\n", 255)
    assert sh(state, "cmd gpu") == ("cmd: Can't find service: gpu\n", 20)
    assert sh(state, "dumpsys wifi") == ("Can't find service: wifi\n", 0)


CPU7 = "/sys/devices/system/cpu/cpu7/cpufreq"


def cpu7(state):
    """cur, min and max of pixel4's prime core, as one ``cat`` prints them."""
    return sh(state, f"cat {CPU7}/scaling_cur_freq {CPU7}/scaling_min_freq {CPU7}/scaling_max_freq")


def test_cpufreq_files_follow_the_power_mode_the_heat_and_the_load(state, clock):
    assert sh(state, f"cat {CPU7}/scaling_governor {CPU7}/cpuinfo_max_freq") == ("schedutil\n2841600\n", 0)
    assert cpu7(state) == ("825600\n825600\n2841600\n", 0)  # idle: schedutil lets the core drop to its floor
    assert sh(state, "cmd power set-fixed-performance-mode-enabled true") == ("", 0)
    assert cpu7(state) == ("2131200\n2131200\n2131200\n", 0)  # pinned to the cluster's fixed frequency
    assert sh(state, "cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq") == ("1209600\n", 0)
    assert sh(state, "cmd power set-fixed-performance-mode-enabled false") == ("", 0)
    with state.thermal.under_load():
        assert cpu7(state) == ("2841600\n825600\n2841600\n", 0)  # a benchmark runs: top of the range
        state.faults.temperature_c = 45.0  # skin at 45 °C: thermal status severe, the CPUs are capped
        assert cpu7(state) == ("2131200\n825600\n2131200\n", 0)
    assert cpu7(state) == ("825600\n825600\n2131200\n", 0)


def test_a_phone_without_the_mode_or_a_cpufreq_file_answers_as_such_a_phone_does(tmp_path, clock):
    profile = dataclasses.replace(PIXEL4, fixed_performance_mode=False, missing_cpufreq_files=("scaling_cur_freq",))
    populate(tmp_path, profile)
    bare = PhoneState(profile, "EMUBARE", Sandbox(tmp_path), Faults(), "recent", ThermalModel(profile, clock))
    assert sh(bare, "cmd power set-fixed-performance-mode-enabled true") == (
        "Failed to set FIXED_PERFORMANCE mode\n"
        "This is likely because Power HAL AIDL is not implemented on this device\n", 255)
    assert bare.fixed_performance_mode is None
    assert sh(bare, f"cat {CPU7}/scaling_cur_freq") == (f"cat: {CPU7}/scaling_cur_freq: No such file or directory\n",
                                                        1)
    assert sh(bare, f"cat {CPU7}/scaling_min_freq {CPU7}/scaling_max_freq") == ("825600\n2841600\n", 0)
    with pytest.raises(ValueError, match=r"^profile 'pixel4': unknown cpufreq file\(s\) cur_freq in "
                                         r"missing_cpufreq_files; expected some of cpuinfo_max_freq, "):
        dataclasses.replace(PIXEL4, missing_cpufreq_files=("cur_freq",))


def test_heat_rises_under_load_and_cools_when_idle(state, clock):
    profile = dataclasses.replace(PIXEL4, heat_c_per_s=1.0, cool_c_per_s=0.5, max_rise_c=3.0)
    thermal = ThermalModel(profile, clock)
    with thermal.under_load():
        clock.now = 2.0
    assert thermal.rise_c() == 2.0
    assert dict((s.hal_name, c) for s, c in thermal.sensor_temperatures())["skin"] == 30.0 + 2.0 * 0.6
    assert thermal.battery_temperature_c() == 28.5 + 2.0 * 0.4
    clock.now = 4.0
    assert thermal.rise_c() == 1.0
    clock.now = 10.0
    assert thermal.rise_c() == 0.0
    with thermal.under_load():
        clock.now = 20.0
    assert thermal.rise_c() == 3.0  # capped at max_rise_c
    assert thermal.battery_temperature_c(override_c=41.5) == 41.5


def test_sensor_files_follow_the_heat_and_the_overrides(state, clock):
    with state.thermal.under_load():
        clock.now = 10.0  # pixel4: 0.6 C/s
    assert sh(state, "cat /sys/class/thermal/thermal_zone5/type /sys/class/thermal/thermal_zone5/temp") == (
        "skin-therm\n33600\n", 0)
    state.faults.temperature_c = 47.0
    state.faults.battery_level = 12
    assert sh(state, "cat /sys/class/thermal/thermal_zone0/temp /sys/class/power_supply/battery/temp "
                     "/sys/class/power_supply/battery/capacity") == ("47000\n470\n12\n", 0)


def test_sensor_files_are_rewritten_only_for_commands_that_name_them(state, clock, monkeypatch):
    writes = []
    real_refresh = state.refresh_sensor_files
    monkeypatch.setattr(state, "refresh_sensor_files", lambda: writes.append(1) or real_refresh())
    assert sh(state, "dumpsys battery; echo x; getprop ro.product.model; cmd power "
                     "set-fixed-performance-mode-enabled true; ls /data/local/tmp")[1] == 0
    assert writes == []  # a real phone makes sysfs values when read; nothing reads them here
    with state.thermal.under_load():
        clock.now = 10.0  # pixel4: 0.6 C/s
    zone = "/sys/class/thermal/thermal_zone5"
    assert sh(state, f"stat -c %s {zone}/temp") == ("6\n", 0) and len(writes) == 1  # "33600\n" now
    assert sh(state, "cat /sys/class/../class/thermal/./thermal_zone5/temp") == ("33600\n", 0) and len(writes) == 2
    assert sh(state, "taskset 1 cat /sys/class/power_supply/battery/capacity") == ("85\n", 0) and len(writes) == 3
    assert state.is_sensor_path("/sys/class/thermal") and state.is_sensor_path("sys/class/power_supply/battery")
    assert not any(state.is_sensor_path(p) for p in ("/sys/class", "/sys/class/thermalx", "/../x", "-c", "a\0b"))
    assert [state.cpufreq_core(p) for p in (f"{CPU7}/scaling_cur_freq", "/sys/devices/system/cpu/cpu1/cpufreq",
                                            "/sys/devices/system/cpu/cpu1/../cpu3/cpufreq/x",
                                            "/sys/devices/system/cpu/possible", "/../x")] == [7, 1, 3, None, None]


def test_faults_are_validated_when_set():
    faults = Faults()
    with pytest.raises(ValueError, match="Faults.slow_response_s must be a finite number >= 0, got -1"):
        faults.slow_response_s = -1
    with pytest.raises(ValueError, match="Faults.battery_level must be None or an int 0..100, got 101"):
        Faults(battery_level=101)
    with pytest.raises(ValueError, match="Faults.reject_auth must be a bool, got 'yes'"):
        faults.reject_auth = "yes"
    with pytest.raises(ValueError, match="Faults.temperature_c must be None or a finite number of degrees C, got nan"):
        faults.temperature_c = float("nan")
    with pytest.raises(ValueError, match=r"^Faults.slow_benchmark_runs must be a set of benchmark_model run numbers "
                                         r"\(ints >= 1\), got \{0\}$"):
        faults.slow_benchmark_runs = {0}
    with pytest.raises(ValueError, match=r"^Faults.drop_benchmark_runs must be a set of benchmark_model run numbers "
                                         r"\(ints >= 1\), got 2$"):
        Faults(drop_benchmark_runs=2)
    with pytest.raises(ValueError, match="^Faults.slow_benchmark_factor must be a finite number > 0, got 0$"):
        faults.slow_benchmark_factor = 0
    faults.slow_benchmark_runs = [3, 2, 3]
    assert faults.slow_benchmark_runs == frozenset({2, 3})  # any collection of run numbers, kept as a set


def test_sandbox_paths(tmp_path):
    sandbox = Sandbox(tmp_path)
    assert sandbox.device_path("a/./b/../c", cwd="/data") == "/data/a/c"
    assert sandbox.host_path("/data/local/tmp/x") == tmp_path.resolve() / "data/local/tmp/x"
    with pytest.raises(SandboxError, match="^/../x: '..' leaves the root directory$"):
        sandbox.host_path("/../x")
    with pytest.raises(SandboxError, match="^/proc/x: Permission denied$"):
        sandbox.writable_host_path("/proc/x")
    with pytest.raises(SandboxError, match="^/data/local/tmp: Permission denied$"):
        sandbox.writable_host_path("/data/local/tmp")
    os.symlink("/etc", tmp_path / "escape")
    with pytest.raises(SandboxError, match="^/escape/passwd: Permission denied$"):
        sandbox.host_path("/escape/passwd")


def test_stats_line_and_cpu_lists():
    assert stats_line([100.4, 120.6, 90.0, 110.0]) == "count=4 first=100 curr=110 min=90 max=121 avg=105.25 std=11"
    assert stats_line([5.0, 5.2]) == "count=2 curr=5(all same)"  # as tflite::Stat prints identical runs
    assert stats_line([1234567.0]) == "count=1 curr=1234567"
    assert stats_line([]) == "count=0"
    assert cpu_list([0, 1, 2, 3, 5, 7, 8]) == "0-3,5,7-8"
    assert cpu_list([4]) == "4"


def test_profiles_describe_the_three_pixels():
    assert {name: [(c.cores, c.max_freq_khz) for c in p.clusters] for name, p in PROFILES.items()} == {
        "pixel3": [((0, 1, 2, 3), 1766400), ((4, 5, 6, 7), 2803200)],
        "pixel4": [((0, 1, 2, 3), 1785600), ((4, 5, 6), 2419200), ((7,), 2841600)],
        "pixel6": [((0, 1, 2, 3), 1803000), ((4, 5), 2253000), ((6, 7), 2802000)],
    }
    assert [(p.model, p.board_platform, p.device) for p in PROFILES.values()] == [
        ("Pixel 3", "sdm845", "blueline"), ("Pixel 4", "msmnile", "flame"), ("Pixel 6", "gs101", "oriole")]
    with pytest.raises(ValueError, match=r"profile 'bad': cluster cores must number 0..N-1 once each, got \[0, 2\]"):
        dataclasses.replace(PIXEL4, name="bad", clusters=(dataclasses.replace(PIXEL4.clusters[0], cores=(0, 2)),))
