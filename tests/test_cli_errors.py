"""How errors reach a user: their own mistakes as one line, bugs with their traceback, --debug for everything.

The bug cases run ``akd-tf`` in a real subprocess with a library function patched to fail, so what is
checked is what a terminal shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from click.testing import CliRunner

from akd_tf.cli import main

ARCH0 = ("mbconv6_k5_se0.25_noskip_w0.75_n0:conv_k3_se0_id_w1_n3:mbconv3_k5_se0.25_id_w1_n3:"
         "mbconv3_k5_se0_id_w1.25_n3:dwconv_k5_se0.25_noskip_w1.25_n3:mbconv6_k3_se0_id_w0.75_n3:"
         "conv_k3_se0_noskip_w1_n0")


def _akd_tf(args: list[str], *, patch: str = "", debug_env: bool = False) -> subprocess.CompletedProcess:
    """``akd-tf ARGS`` in a fresh interpreter, after running ``patch`` (Python) to plant a fault."""
    code = textwrap.dedent(patch) + f"\nfrom akd_tf.cli import main\nmain({args!r}, prog_name='akd-tf')\n"
    env = {**os.environ, "AKD_TF_DEBUG": "1"} if debug_env else {k: v for k, v in os.environ.items()
                                                                 if k != "AKD_TF_DEBUG"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


PLANTED_BUG = """
    import akd_tf.space

    def sample_many(self, n, seed=None):
        raise ValueError("planted bug: a ValueError no user caused")

    akd_tf.space.SearchSpace.sample_many = sample_many
"""


def test_a_bad_architecture_string_is_one_clear_line():
    result = _akd_tf(["arch", "show", "nonsense"])
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == ("Error: Invalid value for ARCH: space 'mnasnet': expected 7 blocks "
                                              "separated by ':', got 1 in 'nonsense'")
    assert "Traceback" not in result.stderr


def test_a_library_user_error_is_one_line_with_exit_status_1(tmp_path):
    result = CliRunner().invoke(main, ["latency", "query", "--arch", ARCH0, "--device", "pixel-9",
                                       "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 1
    assert result.output == "Error: unknown device 'pixel-9'; known devices: none\n"


def test_a_value_error_that_is_a_bug_keeps_its_traceback():
    result = _akd_tf(["arch", "sample"], patch=PLANTED_BUG)
    assert result.returncode == 1
    assert "Traceback (most recent call last):" in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: planted bug: a ValueError no user caused")
    assert not any(line.startswith("Error: ") for line in result.stderr.splitlines())


def test_debug_shows_the_traceback_of_a_user_error_too(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    for args, env in ((["--debug", "latency", "query", "--arch", ARCH0, "--device", "pixel-9", "--db", db], False),
                      (["latency", "query", "--arch", ARCH0, "--device", "pixel-9", "--db", db], True)):
        result = _akd_tf(args, debug_env=env)
        assert result.returncode == 1
        assert "Traceback (most recent call last):" in result.stderr
        assert result.stderr.rstrip().endswith("MissingData: unknown device 'pixel-9'; known devices: none")
