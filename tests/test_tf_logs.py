"""TensorFlow's own log lines stay off the screen unless --debug asks for them (akd_tf.cli.tf_logs)."""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from akd_tf.cli.tf_logs import is_tensorflow_log_line, tensorflow_logs_kept_out

AKD_TF = Path(sys.executable).with_name("akd-tf")
XNNPACK = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
# As TensorFlow 2.20 and ai-edge-litert 2.3 wrote them on a CPU-only host.
TENSORFLOW_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796048909.608851   20119 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1796048922.563400   20119 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)",
    "W1123 18:58:46.123456  4242 loader.cc:12] some warning",
    XNNPACK,
    "WARNING:tensorflow:5 out of the last 5 calls to <function f at 0x7f> triggered tf.function retracing.",
    "WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built.",
]
OTHER_LINES = [
    "Error: /tmp/m.tflite: no such model file",
    "Warning: farm: no `akd-tf devices serve` worker serves pixel-4",
    "WARNING: Attempting to use a delegate that only supports static-sized tensors",  # TFLite's own warnings stay
    "F1123 18:58:46.123456  4242 core.cc:1] Check failed: fatal lines stay",
    "Traceback (most recent call last):",
    "INFO is not a prefix here",
    "ERROR:tensorflow:errors stay",
    "WARNING:akd_tf:other loggers stay",
]


def test_tensorflow_s_log_lines_are_told_from_everything_else():
    assert [is_tensorflow_log_line(line.encode()) for line in TENSORFLOW_LINES] == [True] * len(TENSORFLOW_LINES)
    assert [is_tensorflow_log_line(line.encode()) for line in OTHER_LINES] == [False] * len(OTHER_LINES)


def test_the_python_loggers_are_quiet_within_the_block_only():
    logger = logging.getLogger("tensorflow")
    before = logger.level
    with tensorflow_logs_kept_out():
        assert (logger.level, logging.getLogger("absl").level) == (logging.ERROR, logging.ERROR)
    assert logger.level == before


def test_native_writes_to_fd_2_lose_only_tensorflow_s_lines_children_included():
    script = textwrap.dedent(f"""
        import os, subprocess, sys, time
        from akd_tf.cli.tf_logs import tensorflow_logs_kept_out
        lines = {TENSORFLOW_LINES + OTHER_LINES!r}
        with tensorflow_logs_kept_out():
            os.write(2, "".join(line + "\\n" for line in lines).encode())
            print("from python", file=sys.stderr)
            subprocess.run([sys.executable, "-c", "import os; os.write(2, {XNNPACK!r}.encode() + b'\\\\nchild\\\\n')"])
            os.write(2, b"prompt without a newline: ")
            time.sleep(0.5)
            os.write(2, b"answered\\n")
            lingering = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])  # holds fd 2
            started = time.monotonic()
        print(f"after, {{time.monotonic() - started < 1.0}}", file=sys.stderr)
        lingering.kill()
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [*OTHER_LINES, "from python", "child", "prompt without a newline: answered",
                                        "after, True"]  # not held up by a child that keeps the pipe open


@pytest.fixture(scope="module")
def tflite_path(tiny_space, tmp_path_factory):
    from akd_tf import export

    arch = tiny_space.parse("dwconv_k3_se0_noskip_w1_n1:dwconv_k3_se0_noskip_w1_n1")
    return export.export_arch(arch, (32, 32, 3), 10, tmp_path_factory.mktemp("m") / "m.tflite").path


@pytest.mark.parametrize("debug", [False, True])
def test_a_command_shows_the_interpreter_s_log_line_only_with_debug(tflite_path, debug):
    command = [str(AKD_TF), *(["--debug"] if debug else []), "bench", tflite_path, "--runs", "1", "--warmup", "0",
               "--min-secs", "0", "--core", "none"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AKD_TF_INTERPRETER": "ai-edge-litert"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("model:            m.tflite\n")
    assert done.stderr == (XNNPACK + "\n" if debug else "")
