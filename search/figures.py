"""Matplotlib figures of one search run or two overlaid (the paper's Figs. 4, 5, 6 and 8).

Every function takes :class:`RunData` (a run's summary and its trials as :func:`search.runs.trial_dict`
rows) and returns a :class:`matplotlib.figure.Figure` without drawing it on screen (Agg backend), so
tests can read what is plotted: each plotted set carries a ``gid`` (``"children:<run>"``,
``"pareto:<run>"``, ``"fit:<run>"``, ``"pca:<run>"``, ``"heatmap"``, ``"target"``).
Only finished children with an accuracy are plotted; failed and excluded ones are counted in the titles.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from akd_tf.errors import InvalidInput  # noqa: E402
from akd_tf.space import get_space  # noqa: E402
from search import analysis  # noqa: E402

COLOURS = ("tab:blue", "tab:orange")  # first run, second run (as in the paper: AKD blue, NAS orange)
COLOUR_MAPS = ("Blues", "Oranges")
MARKERS = ("o", "^")  # so one run's points stay visible where they coincide with the other's


@dataclass(frozen=True)
class RunData:
    """A stored run as the figures need it: ``summary`` (:func:`search.runs.run_status`) and ``trials``."""

    summary: dict
    trials: list[dict]

    @property
    def name(self) -> str:
        return self.summary["name"]

    @property
    def done(self) -> list[dict]:
        """Finished children with an accuracy and a latency, in trial order."""
        return [t for t in self.trials if t["status"] == "done" and t["accuracy"] is not None
                and t["latency_ms"] is not None]

    @property
    def failed(self) -> int:
        return sum(t["status"] == "failed" for t in self.trials)

    @property
    def excluded(self) -> int:
        return sum(t["status"] == "excluded" for t in self.trials)

    def label(self) -> str:
        return f"{self.name} ({self.summary['reward_source']})"


def check_runs(runs: Sequence[RunData]) -> None:
    """``ValueError`` unless there are one or two runs of one space."""
    if not 1 <= len(runs) <= 2:
        raise InvalidInput(f"figures show one run or two overlaid, got {len(runs)}")
    if len(runs) == 2 and runs[0].summary["space"] != runs[1].summary["space"]:
        raise InvalidInput(f"runs {runs[0].name!r} and {runs[1].name!r} searched different spaces "
                           f"({runs[0].summary['space']} and {runs[1].summary['space']}); their architectures "
                           f"cannot be compared")


def _mark_target(ax, runs: Sequence[RunData], vertical: bool) -> None:
    targets = sorted({r.summary["target_ms"] for r in runs if r.summary["target_ms"] is not None})
    for target in targets:
        line = ax.axvline(target, **_TARGET) if vertical else ax.axhline(target, **_TARGET)
        line.set_gid("target")
        line.set_label(f"target {target:g} ms")


_TARGET = {"color": "tab:red", "linestyle": "--", "linewidth": 1}


def trajectory(runs: Sequence[RunData]) -> Figure:
    """Reward, accuracy and latency of each child against its trial number (Fig. 4 C/D)."""
    check_runs(runs)
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True, layout="constrained")
    for run, colour in zip(runs, COLOURS):
        done = run.done
        number = [t["number"] for t in done]
        for ax, values in zip(axes, ([t["reward"] for t in done], [100 * t["accuracy"] for t in done],
                                     [t["latency_ms"] for t in done])):
            ax.scatter(number, values, s=14, color=colour, alpha=0.75, label=run.label(), gid=f"children:{run.name}")
        if done:
            best = np.maximum.accumulate([t["reward"] for t in done])
            axes[0].step(number, best, where="post", color=colour, linewidth=1.2, label=f"best so far ({run.name})",
                         gid=f"best:{run.name}")
    axes[0].set_ylabel("reward")
    axes[1].set_ylabel("proxy top-1 accuracy (%)")
    axes[2].set_ylabel("latency (ms)")
    axes[2].set_xlabel("trial number")
    _mark_target(axes[2], runs, vertical=False)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("Children along the search" + _failed_note(runs))
    return fig


def _failed_note(runs: Sequence[RunData]) -> str:
    """``" (1 failed, 2 excluded, not shown)"``, naming only what there is; ``""`` when nothing is left out."""
    counts = [(sum(r.failed for r in runs), "failed"), (sum(r.excluded for r in runs), "excluded")]
    named = [f"{n} {what}" for n, what in counts if n]
    return f" ({', '.join(named)}, not shown)" if named else ""


def pareto(runs: Sequence[RunData]) -> Figure:
    """Accuracy against latency, each run's Pareto front drawn as a line, the target marked (Fig. 4 B)."""
    check_runs(runs)
    fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    for run, colour in zip(runs, COLOURS):
        done = run.done
        accuracy = np.array([100 * t["accuracy"] for t in done])
        latency = np.array([t["latency_ms"] for t in done])
        ax.scatter(latency, accuracy, s=16, color=colour, alpha=0.45, label=f"{run.label()}: {len(done)} children",
                   gid=f"children:{run.name}")
        if done:
            front = analysis.pareto_front(accuracy, latency)
            order = np.argsort(latency[front], kind="stable")
            ax.plot(latency[front][order], accuracy[front][order], marker="o", markersize=6, color=colour,
                    markeredgecolor="black", linewidth=1.5, label=f"Pareto front ({run.name}): {int(front.sum())}",
                    gid=f"pareto:{run.name}")
    _mark_target(ax, runs, vertical=True)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("proxy top-1 accuracy (%)")
    ax.set_title("Accuracy against latency" + _failed_note(runs))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def macs_latency(runs: Sequence[RunData]) -> Figure:
    """Multiply-accumulates against latency with each run's least-squares line and its equation (Fig. 4 E)."""
    check_runs(runs)
    fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    for run, colour in zip(runs, COLOURS):
        done = [t for t in run.trials if t["latency_ms"] is not None and t["mmacs"] is not None]
        latency = np.array([t["latency_ms"] for t in done])
        mmacs = np.array([t["mmacs"] for t in done])
        ax.scatter(latency, mmacs, s=16, color=colour, alpha=0.6, label=f"{run.label()}: {len(done)} children",
                   gid=f"children:{run.name}")
        try:
            fit = analysis.linear_fit(latency, mmacs)
        except ValueError:
            continue  # fewer than two distinct latencies: no line to draw
        xs = np.array([latency.min(), latency.max()])
        ax.plot(xs, fit.slope * xs + fit.intercept, color=colour, linewidth=1.5,
                label=fit.equation("MMACs", "latency (ms)"), gid=f"fit:{run.name}")
    for target in sorted({r.summary["target_mmacs"] for r in runs if r.summary["target_mmacs"] is not None}):
        ax.axhline(target, **_TARGET, gid="target", label=f"target {target:g} M MACs")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("multiply-accumulates (millions)")
    ax.set_title("MACs against latency (every child with a latency, failed ones included)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def architecture_pca(runs: Sequence[RunData]) -> tuple[Figure, analysis.PCAResult]:
    """Every proposed child's one-hot vector projected on the first two principal components of all of them,
    shaded by generation (controller step; light = early, dark = late), one colour map per run (Figs. 5/6)."""
    check_runs(runs)
    space = get_space(runs[0].summary["space"])
    matrices = [analysis.onehot_matrix(space, [t["arch"] for t in run.trials]) for run in runs]
    result = analysis.pca(np.concatenate(matrices), k=2)
    fig, ax = plt.subplots(figsize=(8, 6.5), layout="constrained")
    start = 0
    for run, matrix, cmap, colour, marker in zip(runs, matrices, COLOUR_MAPS, COLOURS, MARKERS):
        coords = result.coords[start:start + len(matrix)]
        start += len(matrix)
        if not len(matrix):
            continue  # a run interrupted before its first step
        steps = np.array([t["step"] for t in run.trials], dtype=float)
        last = max(steps.max(), 1.0)
        ax.scatter(coords[:, 0], coords[:, 1], c=0.25 + 0.75 * steps / last, cmap=cmap, vmin=0, vmax=1, s=26,
                   marker=marker, edgecolors=colour, linewidths=0.4, label=f"{run.label()}: {len(matrix)} children, "
                   f"generations 0-{int(steps.max())}", gid=f"pca:{run.name}")
    ax.set_xlabel(f"principal component 1 ({result.explained[0]:.1%} of variance)")
    ax.set_ylabel(f"principal component 2 ({result.explained[1]:.1%} of variance)")
    ax.set_title(f"Architectures sampled (one-hot width {space.onehot_width}); darker = later generation")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig, result


def option_heatmap(grid: analysis.BlockGrid, title: str, difference: bool) -> Figure:
    """A :class:`search.analysis.BlockGrid` as a heatmap, each cell naming its choice and value (Fig. 8).

    ``difference``: a diverging scale centred on 0 (run A minus run B); else a 0-1 frequency scale.
    """
    values = grid.values
    fig, ax = plt.subplots(figsize=(max(8.0, 0.85 * values.shape[1] + 2), 0.75 * values.shape[0] + 2.2),
                           layout="constrained")
    limit = float(np.nanmax(np.abs(values))) or 1.0
    if difference:
        image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", gid="heatmap")
    else:
        image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", gid="heatmap")
    for row in range(values.shape[0]):
        for col in range(values.shape[1]):
            if np.isnan(values[row, col]):
                continue
            text = f"{grid.labels[row][col]}\n{values[row, col]:+.2f}" if difference else \
                f"{grid.labels[row][col]}\n{values[row, col]:.2f}"
            dark = abs(values[row, col]) > 0.6 * limit if difference else values[row, col] < 0.5
            ax.text(col, row, text, ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
    ax.set_yticks(range(values.shape[0]), grid.rows)
    ax.set_xticks([first + (width - 1) / 2 for _, first, width in grid.groups], [g[0] for g in grid.groups])
    for _, first, width in grid.groups[1:]:
        ax.axvline(first - 0.5, color="black", linewidth=1.2)
    fig.colorbar(image, ax=ax, label="difference of mean one-hot (A - B)" if difference else
                 "fraction of the children choosing the option")
    width_inches = fig.get_size_inches()[0]
    ax.set_title(textwrap.fill(title, width=int(width_inches * 9)), fontsize=10)
    return fig


def kept_units(widths: dict, branches: dict, title: str) -> Figure:
    """What a carved student kept of its teacher (the subgraph strategy): one bar per channel group, in the
    teacher's layer order, the teacher's width light and the student's dark; a group inside a removed residual
    branch is marked with a cross at 0. ``widths``: producer layer -> (teacher width, student width);
    ``branches``: branch gate -> kept. Sets carry gids ``teacher``, ``student`` and ``removed``."""
    names = list(widths)
    teacher = np.array([widths[n][0] for n in names], dtype=float)
    student = np.array([widths[n][1] for n in names], dtype=float)
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.22 * len(names) + 1.6)), layout="constrained")
    rows = np.arange(len(names))
    ax.barh(rows, teacher, color="lightgrey", label="teacher's channels", gid="teacher")
    ax.barh(rows, student, color=COLOURS[0], label="kept", gid="student")
    gone = rows[student == 0]
    if len(gone):
        ax.scatter(np.zeros(len(gone)), gone, marker="x", color="tab:red", zorder=3,
                   label="inside a removed residual branch", gid="removed")
    ax.set_yticks(rows, names, fontsize=7)
    ax.invert_yaxis()  # the input at the top
    ax.set_xlabel("output channels of the layer (a channel group's producer)")
    kept = sum(bool(v) for v in branches.values())
    ax.set_title(f"{title}\n{kept} of {len(branches)} residual branches kept, "
                 f"{int(student.sum()):,} of {int(teacher.sum()):,} gated channels")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig
