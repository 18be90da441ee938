"""TensorFlow's own log lines, kept off the user's screen unless ``--debug`` asks for them.

TensorFlow and the TFLite interpreter log from native code straight to file descriptor 2, where
``TF_CPP_MIN_LOG_LEVEL`` (:mod:`akd_tf.tf_env`) does not reach everything: CUDA probing before absl's
logging is initialised (``I0000 00:00:... cudart_stub.cc:31] Could not find cuda drivers ...``) and the
interpreter's ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` appear whatever it says.
:func:`tensorflow_logs_kept_out` puts a pipe in front of fd 2 for the length of a command and passes on
every line but those (:func:`is_tensorflow_log_line`); TensorFlow's Python warnings (retracing) are kept
out by its loggers' level. Everything else written to stderr, by Python or by native code, gets through.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import sys
import threading
from typing import Iterator

# absl/TensorFlow C++ lines ("I0000 00:00:1796048909.608851   20119 cudart_stub.cc:31] ..."; FATAL ones, which
# abort, are kept), absl's notice before its logging is set up, the TFLite interpreter's INFO lines, and the
# Python loggers' lines in Python's default format ("WARNING:tensorflow:5 out of the last 5 calls to ...
# triggered tf.function retracing"), as a worker process writes them: the loggers' levels set here do not
# reach processes the search spawns, the pipe on fd 2 does.
_TENSORFLOW_LOG_LINE = re.compile(
    rb"[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.+-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    rb"|INFO: "
    rb"|(?:DEBUG|INFO|WARNING):(?:tensorflow|absl):")
PYTHON_LOGGERS = ("tensorflow", "absl")  # TensorFlow's Python warnings (retracing) and tf_keras' through absl
PARTIAL_LINE_S = 0.2  # a line left unfinished this long is passed on as it is (a prompt, a \r progress line)
DRAIN_TIMEOUT_S = 5.0  # at the end of a command, the longest wait for what it wrote to be passed on
_DRAINED = b"\0akd-tf: all written before this line was passed on\0"


def is_tensorflow_log_line(line: bytes) -> bool:
    """Whether ``line`` (without its newline) is one of TensorFlow's or the TFLite interpreter's own log lines."""
    return _TENSORFLOW_LOG_LINE.match(line) is not None


@contextlib.contextmanager
def tensorflow_logs_kept_out() -> Iterator[None]:
    """Within the block, TensorFlow's log lines do not reach stderr; every other line does.

    The file-descriptor filter applies when ``sys.stderr`` is this process's fd 2 (not under click's
    ``CliRunner``, which captures Python's streams only); child processes started within the block
    inherit it.
    """
    levels = {name: logging.getLogger(name).level for name in PYTHON_LOGGERS}
    for name in PYTHON_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with _filtered_fd2():
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _stderr_is_fd2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced by a stream without a descriptor
        return False


@contextlib.contextmanager
def _filtered_fd2() -> Iterator[None]:
    if not _stderr_is_fd2():
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    drained = threading.Event()
    # A daemon: child processes that outlive the command (multiprocessing's resource tracker) keep the pipe
    # open; their lines are still passed on while this process lives.
    threading.Thread(target=_forward, args=(read_end, terminal, drained), name="tensorflow-log-filter",
                     daemon=True).start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.write(write_end, _DRAINED + b"\n")  # behind everything the command wrote
        os.close(write_end)
        drained.wait(DRAIN_TIMEOUT_S)


def _forward(read_end: int, out: int, drained: threading.Event) -> None:
    """Copy the pipe to ``out`` line by line, leaving TensorFlow's log lines out, until the pipe closes (then
    close both); set ``drained`` on the line :data:`_DRAINED`."""
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while True:
            ready, _, _ = select.select([pipe], [], [], PARTIAL_LINE_S)
            if not ready:
                if pending and not is_tensorflow_log_line(pending):
                    _write(out, pending)
                    pending = b""
                continue
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.endswith(_DRAINED):  # after a child's unfinished line, perhaps
                    _write(out, line[:-len(_DRAINED)])
                    drained.set()
                elif not is_tensorflow_log_line(line):
                    _write(out, line + b"\n")
    if pending and not is_tensorflow_log_line(pending):
        _write(out, pending)
    os.close(out)
    drained.set()


def _write(out: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(out, data):]
        except OSError:  # stderr itself is gone (a closed pipe): nothing can show these lines
            return
