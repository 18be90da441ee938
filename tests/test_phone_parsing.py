"""What the farm reads from phones and sends to them, pinned on recorded text."""

import os
import stat

import pytest

from akd_tf.benchmark import RunSettings
from devicefarm.adbkeys import ensure_key_pair, public_key_path
from devicefarm.connection import (command_line, commands_line, parse_address, split_exit_status,
                                   split_exit_statuses)
from devicefarm.connection import CommandResult
from devicefarm.probe import (Condition, condition_commands, condition_from, core_mask, cpufreq_commands,
                              parse_cpu_list, parse_cpufreq, parse_dumpsys_battery, parse_getprop,
                              parse_thermalservice, pick_big_core)
from devicefarm.runner import PhoneLimits, benchmark_argv, benchmark_timeout_s, health_problems

BATTERY = """Current Battery Service state:
  AC powered: false
  USB powered: true
  Wireless powered: false
  Max charging current: 500000
  status: 2
  health: 2
  present: true
  level: 85
  scale: 100
  voltage: 4187
  temperature: 285
  technology: Li-ion
"""

THERMAL = """IsStatusOverride: false
ThermalEventListeners:
\tcallbacks: 1
Thermal Status: 1
Cached temperatures:
\tTemperature{mValue=33.2, mType=3, mName=skin, mStatus=0}
\tTemperature{mValue=41.5, mType=0, mName=cpu7, mStatus=1}
\tTemperature{mValue=39.0, mType=0, mName=cpu7, mStatus=0}
HAL Ready: true
"""


def test_getprop_lines():
    text = "[ro.product.model]: [Pixel 4]\n[ro.board.platform]: [msmnile]\n[empty]: []\nnoise\n"
    assert parse_getprop(text) == {"ro.product.model": "Pixel 4", "ro.board.platform": "msmnile", "empty": ""}


def test_cpu_lists_and_big_core():
    assert parse_cpu_list("0-3,6,7\n") == [0, 1, 2, 3, 6, 7]
    with pytest.raises(ValueError, match=r"unreadable CPU list 'a-b'"):
        parse_cpu_list("a-b")
    pixel4 = {0: 1785600, 1: 1785600, 2: 1785600, 3: 1785600, 4: 2419200, 5: 2419200, 6: 2419200, 7: 2841600}
    assert pick_big_core(pixel4) == 7
    assert pick_big_core({0: 1766400, 4: 2803200, 5: 2803200}) == 5
    assert (core_mask(0), core_mask(7), core_mask(11)) == ("1", "80", "800")


def test_battery_and_thermal():
    assert parse_dumpsys_battery(BATTERY) == {"level_pct": 85.0, "temperature_c": 28.5, "status": 2, "plugged": True}
    thermal = parse_thermalservice(THERMAL)
    assert thermal == {"status": 1, "status_name": "light", "temperatures_c": {"skin": 33.2, "cpu7": 41.5}}
    assert Condition(parse_dumpsys_battery(BATTERY), thermal).temperature_c == 41.5
    with pytest.raises(ValueError, match="printed no 'level:' line"):
        parse_dumpsys_battery("Can't find service: battery")


def test_cpufreq_state_keeps_what_the_phone_answered_and_null_for_the_rest():
    commands = cpufreq_commands(4)
    assert commands == [["cat", f"/sys/devices/system/cpu/cpu4/cpufreq/{name}"] for name in (
        "scaling_governor", "scaling_cur_freq", "scaling_min_freq", "scaling_max_freq", "cpuinfo_max_freq")]
    answers = [("schedutil\n", 0), ("cat: scaling_cur_freq: Permission denied\n", 1), ("710400\n", 0),
               ("2419200 \n", 0), ("n/a\n", 0)]
    results = [CommandResult(argv, output, status) for argv, (output, status) in zip(commands, answers)]
    assert parse_cpufreq(4, results) == {"core": 4, "governor": "schedutil", "cur_freq_khz": None,
                                         "min_freq_khz": 710400, "max_freq_khz": 2419200,
                                         "cpuinfo_max_freq_khz": None}
    missing = [CommandResult(argv, "cat: x: No such file or directory\n", 1) for argv in commands]
    assert parse_cpufreq(4, missing) == {"core": 4, "governor": None, "cur_freq_khz": None, "min_freq_khz": None,
                                         "max_freq_khz": None, "cpuinfo_max_freq_khz": None}
    state = [CommandResult(["dumpsys", "battery"], BATTERY, 0), CommandResult(["dumpsys", "thermalservice"], "", 1)]
    assert condition_commands() == [["dumpsys", "battery"], ["dumpsys", "thermalservice"]]
    assert condition_commands(4) == condition_commands() + commands
    assert condition_from(state).cpu == {} and condition_from(state + results, 4).cpu["min_freq_khz"] == 710400
    with pytest.raises(ValueError, match=r"^expected 5 cpufreq results, got 4$"):
        parse_cpufreq(4, results[:4])
    with pytest.raises(ValueError, match=r"^core must be an int >= 0, got -1$"):
        cpufreq_commands(-1)


def test_health_problems_name_the_limit():
    limits = PhoneLimits(cool_to_c=40.0, min_battery_pct=20.0, max_thermal_status=2)
    hot = Condition({"level_pct": 15.0, "temperature_c": 30.0},
                    {"status": 3, "status_name": "severe", "temperatures_c": {"skin": 45.0}})
    assert health_problems(hot, limits) == ["battery at 15% is below the minimum 20%",
                                            "thermal status severe (3) means throttling",
                                            "temperature 45.0 °C is above 40 °C"]
    assert health_problems(hot, limits, for_cooling=True)[-1] == "thermal status severe (3) means throttling"
    assert health_problems(Condition({"level_pct": 90.0, "temperature_c": 30.0}, {}), limits) == []


def test_commands_are_quoted_and_report_their_status():
    nasty = "/data/local/tmp/akd-tf/models/a; touch pwned $(reboot).tflite"
    line = command_line(["sha256sum", nasty])
    assert line == "sha256sum '/data/local/tmp/akd-tf/models/a; touch pwned $(reboot).tflite' ; echo __akd_tf_exit=$?"
    assert split_exit_status("abc  file\n__akd_tf_exit=0\n") == ("abc  file\n", 0)
    assert split_exit_status("partial output") is None
    with pytest.raises(ValueError, match="non-empty list of strings"):
        command_line("ls /")


def test_several_commands_share_one_line_and_keep_their_own_status():
    line = commands_line([["rm", "-f", "/d/a b.tflite"], ["dumpsys", "battery"]])
    assert line == "rm -f '/d/a b.tflite' ; echo __akd_tf_exit=$? ; dumpsys battery ; echo __akd_tf_exit=$?"
    assert split_exit_statuses("__akd_tf_exit=0\n  level: 85\n__akd_tf_exit=0\n", 2) == [("", 0), ("  level: 85\n", 0)]
    assert split_exit_statuses("no tail__akd_tf_exit=1\r\nx\n__akd_tf_exit=-2", 2) == [("no tail", 1), ("x\n", -2)]
    assert split_exit_statuses("a\n__akd_tf_exit=0\nhalf of the sec", 2) is None  # dropped before the 2nd status
    assert split_exit_statuses("a\n__akd_tf_exit=0\nb\n__akd_tf_exit=0\nstray", 2) is None
    with pytest.raises(ValueError, match="expected a non-empty list of commands, got \\[\\]"):
        commands_line([])
    with pytest.raises(ValueError, match="non-empty list of strings"):
        commands_line(["ls /"])


def test_benchmark_command_and_timeout():
    settings = RunSettings(num_runs=50, warmup_runs=1, min_secs=1.0, warmup_min_secs=0.5, max_secs=150.0)
    assert benchmark_argv("/data/local/tmp/akd-tf/benchmark_model", "/d/m.tflite", 7, settings) == [
        "taskset", "80", "/data/local/tmp/akd-tf/benchmark_model", "--graph=/d/m.tflite", "--num_threads=1",
        "--num_runs=50", "--warmup_runs=1", "--min_secs=1", "--warmup_min_secs=0.5", "--max_secs=150"]
    assert benchmark_timeout_s(settings) == 360.0  # far beyond adb-shell's 10 s default read timeout


@pytest.mark.parametrize("address, expected", [("127.0.0.1:5555", ("127.0.0.1", 5555)),
                                               ("192.168.1.20", ("192.168.1.20", 5555)),
                                               ("phone.lan:5037", ("phone.lan", 5037)),
                                               ("0A1B2C3D4E", None)])
def test_addresses(address, expected):
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["host:0", "host:99999", ":5555", "has space"])
def test_bad_addresses(address):
    with pytest.raises(ValueError, match="ADB address"):
        parse_address(address)


def test_key_pair_is_generated_private(tmp_path):
    key = ensure_key_pair(tmp_path / "android" / "adbkey")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert public_key_path(key).read_text().startswith("QAAAA")  # base64 of modulus_size_words=64
    os.chmod(key, 0o644)
    assert ensure_key_pair(key) == key and stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="is a directory"):
        ensure_key_pair(tmp_path)
