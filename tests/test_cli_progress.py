"""Progress without a terminal: plain ``label: N/M (x%)`` lines instead of a bar that would print only its label."""

import io
from pathlib import Path

import click

from akd_tf.cli.common import PlainProgress, progress_bar

CLI = Path(__file__).resolve().parents[1] / "akd_tf" / "cli"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_prints_a_line_per_tenth_of_the_work_and_the_end():
    lines, clock = [], Clock()
    with PlainProgress(40, "measuring archs", clock=clock, echo=lines.append) as bar:
        for _ in range(40):
            clock.now += 0.1
            bar.update(1)
    assert lines == ["measuring archs: 0/40 (0%)"] + [f"measuring archs: {n}/40 ({n / 40:.0%})"
                                                      for n in range(4, 41, 4)]


def test_plain_progress_prints_every_ten_seconds_when_the_work_is_slow_and_the_last_count_at_exit():
    lines, clock = [], Clock()
    with PlainProgress(1000, "measuring or queuing", clock=clock, echo=lines.append) as bar:
        for _ in range(7):
            clock.now += 4.0
            bar.update(1)
    assert lines == ["measuring or queuing: 0/1000 (0%)", "measuring or queuing: 3/1000 (0%)",
                     "measuring or queuing: 6/1000 (1%)", "measuring or queuing: 7/1000 (1%)"]


def test_a_terminal_gets_click_s_bar_and_anything_else_plain_lines(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(progress_bar(5, "x"), PlainProgress)
    monkeypatch.setattr("sys.stdout", Terminal())
    assert isinstance(progress_bar(5, "x"), click._termui_impl.ProgressBar)


def test_every_progress_bar_of_the_cli_goes_through_progress_bar():
    calls = {path.name for path in CLI.glob("*.py") if "click.progressbar(" in path.read_text()}
    assert calls == {"common.py"}


def test_a_farm_wait_in_a_log_shows_how_far_it_got(capsys):
    from akd_tf.cli.latency import FarmProgress

    with FarmProgress("measured on the farm") as farm:
        for done, failed in ((0, 0), (1, 0), (2, 1), (3, 1)):
            farm(done, failed, 4)
    assert capsys.readouterr().out.splitlines() == [
        "measured on the farm: 0/4 (0%)", "measured on the farm: 1/4 (25%)", "measured on the farm: 3/4 (75%)",
        "measured on the farm: 4/4 (100%)"]
