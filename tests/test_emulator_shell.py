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
from devicefarm.emulator.shell_syntax import (SUPPORTED_FORMS, AndOr, Arith, ForLoop, Lit, Param, Pipeline, Redirect,
                                              ShellSyntaxError, Simple, Word, parse)
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


def W(text):  # noqa: N802 - a plain word, as the parser builds it
    return Word((Lit(text),))


def S(*words, redirects=()):  # noqa: N802 - a simple command of plain (str) or built (Word) words
    return Simple((), tuple(W(w) if isinstance(w, str) else w for w in words), tuple(redirects))


def P(*commands):  # noqa: N802 - a pipeline
    return Pipeline(tuple(commands))


def test_parse_builds_the_script_a_line_holds():
    quoted = parse("echo 'a;b' \\; \"c&&d\" \"<$?>\" \"\"")
    assert quoted == (AndOr(P(S("echo", Word((Lit("a;b", True),)), Word((Lit(";", True),)),
                                Word((Lit("c&&d", True),)), Word((Lit("<", True), Param("?", True), Lit(">", True))),
                                Word((Lit("", True),))))),)
    assert parse("a | b 2>&1 >f && c || d") == (AndOr(
        P(S("a"), S("b", redirects=(Redirect(2, ">&", 1), Redirect(1, ">", W("f"))))),
        (("&&", P(S("c"))), ("||", P(S("d"))))),)
    loop = parse("for i in 1 $x\ndo # a comment\n  echo $((i+${x}))\ndone < in")
    body = (AndOr(P(S("echo", Word((Arith((Lit("i+"), Param("x"))),))))),)
    assert loop == (AndOr(P(ForLoop("i", (W("1"), Word((Param("x"),))), body, (Redirect(0, "<", W("in")),)))),)
    assert parse("X=a$? Y=") == (AndOr(P(Simple((("X", Word((Lit("a"), Param("?")))), ("Y", Word(()))), ()))),)
    assert parse("") == () and parse("true;") == parse("true") and parse("# only a comment") == ()
    assert parse("echo a#b 2>x") == (AndOr(P(S("echo", "a#b", redirects=(Redirect(2, ">", W("x")),)))),)


@pytest.mark.parametrize("line, refused", [
    ("sleep 1 &", "'&' (background jobs)"),
    ("(id)", "'('"),
    ("echo `id`", "'`'"),
    ("echo \"$(id)\"", "'$(' (command substitution)"),
    ("echo $1", "'$1'"),
    ("echo ${X:-y}", "'${X:-y}' (only ${NAME} and ${?})"),
    ("ls /data/*", "glob '*'"),
    ("cd ~", "'~' at the start of a word"),
    ("if true; then id; fi", "reserved word 'if'"),
    ("while true; do id; done", "reserved word 'while'"),
    ("X=1 id", "variable assignment before a command ('X=...')"),
    ("cat <<EOF", "'<<'"),
    ("echo 3>x", "file descriptor 3"),
    ("echo x >&-", "'1>&-' (only 1>&2 and 2>&1)"),
    ("cat 2<x", "'2<' (input from descriptor 0, output to 1 or 2)"),
])
def test_unsupported_forms_are_refused_naming_the_supported_ones_before_anything_runs(state, line, refused):
    message = f"unsupported syntax: {refused} ({SUPPORTED_FORMS})"
    with pytest.raises(ShellSyntaxError, match=f"^{re.escape(message)}$"):
        parse(line)
    assert sh(state, "touch /data/local/tmp/ran; " + line) == (f"/system/bin/sh: {message}\n", 2)
    assert not (state.sandbox.root / "data/local/tmp/ran").exists()


@pytest.mark.parametrize("line, message", [
    ("echo 'open", "syntax error: unterminated quoted string"),
    ("; id", "syntax error: ';' unexpected"),
    ("id &&", "syntax error: unexpected end of line"),
    ("echo >", "syntax error: unexpected end of line"),
    ("for x in a b; do echo $x", "syntax error: 'for' without its 'done'"),
    ("for 1x in a; do id; done", "syntax error: for: '1x' is not a valid variable name"),
    ("done", "syntax error: 'done' unexpected"),
    ("echo $((1+2)", "syntax error: unterminated $((...))"),
])
def test_syntax_errors_are_refused_before_anything_runs(state, line, message):
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


def test_pipes_carry_standard_output_only_and_end_with_the_last_status(state):
    assert sh(state, "echo hi | cat") == ("hi\n", 0)
    assert sh(state, "cat /nope | wc -l") == ("cat: /nope: No such file or directory\n0\n", 0)  # stderr not piped
    assert sh(state, "false | true; echo $?; true | false") == ("0\n", 1)
    assert sh(state, "dumpsys battery | grep -c level | cat") == ("1\n", 0)
    assert sh(state, "exit 5 | echo still") == ("still\n", 0)  # each part of a pipeline is a subshell
    assert sh(state, "echo hi | sha256sum") == (f"{hashlib.sha256(b'hi' + bytes([10])).hexdigest()}  -\n", 0)


def test_redirections_write_append_read_and_duplicate(state):
    assert sh(state, f"echo a > {TMP}/f; echo b >> {TMP}/f; cat < {TMP}/f; wc -c {TMP}/f") == (
        f"a\nb\n4 {TMP}/f\n", 0)
    assert sh(state, f"echo new > {TMP}/f; cat {TMP}/f") == ("new\n", 0)  # > truncates
    assert sh(state, f"ls /nope 2> {TMP}/err; echo $?; cat {TMP}/err") == (
        "1\nls: /nope: No such file or directory\n", 0)
    assert sh(state, "ls /nope 2>&1 | wc -l") == ("1\n", 0)
    assert sh(state, "ls /nope 2>&1 >/dev/null") == ("ls: /nope: No such file or directory\n", 1)  # in order
    assert sh(state, "ls /nope >/dev/null 2>&1") == ("", 1)
    assert sh(state, "echo oops >&2 | wc -c") == ("oops\n0\n", 0)
    assert sh(state, f"for i in 1 2; do echo $i; done > {TMP}/loop; cat {TMP}/loop") == ("1\n2\n", 0)
    assert sh(state, f"cat < {CPU7}/scaling_governor; cat < /dev/null") == ("schedutil\n", 0)
    assert sh(state, "echo ran > /proc/x && echo no; echo $?") == (
        "/system/bin/sh: can't create /proc/x: Permission denied\n1\n", 0)
    assert sh(state, f"cat < {TMP}/none") == (f"/system/bin/sh: can't open {TMP}/none: No such file or directory\n",
                                              1)
    assert sh(state, "echo x > ../../x") == (
        "/system/bin/sh: can't create ../../x: '..' leaves the root directory\n", 1)
    assert not (state.sandbox.root.parent.parent / "x").exists()


def test_for_loops_and_variables(state):
    assert sh(state, "for c in 0 4 7; do cat /sys/devices/system/cpu/cpu$c/cpufreq/cpuinfo_max_freq; done") == (
        "1785600\n2419200\n2841600\n", 0)
    assert sh(state, "for i in 1 2 3\ndo  # squares\n  echo $((i * i))\ndone") == ("1\n4\n9\n", 0)
    assert sh(state, "X='a b'; for w in $X \"$X\" ''; do echo \"<$w>\"; done; echo \"last <$w>\"") == (
        "<a>\n<b>\n<a b>\n<>\nlast <>\n", 0)
    assert sh(state, "for x in; do echo never; done; echo $?") == ("0\n", 0)
    assert sh(state, "for a in 1 2; do for b in x y; do echo -n $a$b' '; done; done; echo") == ("1x 1y 2x 2y \n", 0)
    assert sh(state, "for i in 1; do false; done") == ("", 1)
    assert sh(state, "echo \"<$nothing>\" \"<${nothing}>\" $nothing end") == ("<> <> end\n", 0)


def test_arithmetic_is_mksh_s_32_bit_integer_arithmetic(state):
    assert sh(state, "echo $((1 + 2 * 3)) $(( (1+2)*3 )) $((7 / -2)) $((-7 % 3)) $((2147483647 + 1)) $((16#ff)) "
                     "$((0x10)) $((1 << 33)) $((3 > 2 && !0)) $((~0))") == ("7 9 -3 -1 -2147483648 255 16 2 1 -1\n", 0)
    assert sh(state, "i=6; echo $((i * 7)) $(($i*7)) \"$((i > 5 ? 10 : 20))\"; echo $(($?+1))") == ("42 42 10\n1\n", 0)
    assert sh(state, "echo $((1/0)); echo never") == ("/system/bin/sh: 1/0: zero divisor\n", 1)
    assert sh(state, "echo $((2+))") == ("/system/bin/sh: 2+: unexpected 'end of expression'\n", 1)
    assert sh(state, "n=08x; echo $((n + 1))") == ("/system/bin/sh: n + 1: bad number '08x'\n", 1)
    assert sh(state, "echo $((1 + (2))") == ("/system/bin/sh: syntax error: unterminated $((...))\n", 2)
    assert sh(state, "echo $((i = 1))") == (
        "/system/bin/sh: i = 1: '=' is not supported by the emulated shell (no assignments or commas in $((...)))\n", 1)


def test_exit_ends_the_line_with_its_status(state):
    assert sh(state, "exit 3; echo no") == ("", 3)
    assert sh(state, "false; exit") == ("", 1)
    assert sh(state, "exit 257") == ("", 1)
    assert sh(state, "exit x; echo no") == ("/system/bin/sh: exit: x: bad number\n", 1)


def test_ls_long_format_is_toybox_s(state):
    root = state.sandbox.root / TMP[1:]
    (root / "d").mkdir()
    (root / "f").write_bytes(b"hello\n")
    os.chmod(root / "f", 0o640)
    for name in ("d", "f", ""):
        os.utime(root / name, (1700000000, 1700000000))  # 2023-11-14 22:13:20 UTC
    d, f = os.lstat(root / "d"), os.lstat(root / "f")
    width = max(len(str(d.st_size)), len(str(f.st_size)))
    assert sh(state, f"ls -l {TMP}") == (
        f"total {(d.st_blocks + f.st_blocks) // 2}\n"
        f"drwxr-xr-x 2 shell shell {d.st_size:>{width}} 2023-11-14 22:13 d\n"
        f"-rw-r----- 1 shell shell {f.st_size:>{width}} 2023-11-14 22:13 f\n", 0)
    assert sh(state, f"ls -l {TMP}/f") == (f"-rw-r----- 1 shell shell 6 2023-11-14 22:13 {TMP}/f\n", 0)
    proc = sh(state, "ls -l /proc/cpuinfo")[0]
    assert re.fullmatch(r"-\S+ 1 root root \d+ \d{4}-\d\d-\d\d \d\d:\d\d /proc/cpuinfo\n", proc)
    assert sh(state, f"ls -ld {TMP}")[0].startswith("drwx") and sh(state, f"ls -ld {TMP}")[0].endswith(f" {TMP}\n")
    assert sh(state, f"ls -a {TMP}; ls -1 {TMP}") == (".\n..\nd\nf\nd\nf\n", 0)
    assert sh(state, f"ls -x {TMP}") == ("ls: unsupported option '-x'\n", 1)


def test_text_filters(state):
    text = state.sandbox.root / TMP[1:] / "t"
    text.write_bytes(b"alpha 1\nBeta 2\ngamma 3\n")
    t = f"{TMP}/t"
    assert sh(state, f"grep a {t}") == ("alpha 1\nBeta 2\ngamma 3\n", 0)
    assert sh(state, f"grep -v -i beta {t}") == ("alpha 1\ngamma 3\n", 0)
    assert sh(state, f"grep -c '[[:digit:]]' {t}") == ("3\n", 0)
    assert sh(state, f"grep -n 'a \\(1\\|3\\)' {t}") == ("1:alpha 1\n3:gamma 3\n", 0)  # basic: \( \| \)
    assert sh(state, f"grep -E '^(B|g)' {t}") == ("Beta 2\ngamma 3\n", 0)
    assert sh(state, f"grep '(B|g)' {t}; grep -F . {t}; grep -q alpha {t} && echo quiet") == ("quiet\n", 0)
    assert sh(state, f"grep 1 {t} {t}") == (f"{t}:alpha 1\n{t}:alpha 1\n", 0)
    assert sh(state, f"grep x {t} /nope; echo $?") == ("grep: /nope: No such file or directory\n2\n", 0)
    assert sh(state, f"head -n 2 {t}; tail -1 {t}; cat {t} | head -n1; tail -n 0 {t}") == (
        "alpha 1\nBeta 2\ngamma 3\nalpha 1\n", 0)
    assert sh(state, f"head -1 {t} {t}") == (f"==> {t} <==\nalpha 1\n\n==> {t} <==\nalpha 1\n", 0)
    assert sh(state, f"head -n x {t}") == ("head: bad -n 'x'\n", 1)
    assert sh(state, f"wc {t}; echo a b | wc -w; wc -l {t} {t}") == (f"3 6 23 {t}\n2\n3 {t}\n3 {t}\n6 total\n", 0)


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
