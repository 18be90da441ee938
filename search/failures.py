"""Why a child could not be scored, and whose fault it was: the one table the search decides retries by.

A failed evaluation is either a result about the architecture or says nothing about it. Only the
first may reach the controller (as :data:`search.rewards.FAILED_REWARD`); the second is retried with
the same proposal (same trial, same tokens) up to the run's ``max_attempts`` and, if it keeps failing,
the trial is stored as ``excluded`` with its reason and left out of the controller's update
(:mod:`search.loop`). Every known failure lands here:

=====================  ==============  =====================================================================
kind                   fault           what happened (where it is raised)
=====================  ==============  =====================================================================
``diverged``           architecture    the child's training loss became NaN or infinite
                                       (:class:`akd_tf.distill.TrainingDiverged` in ``train_child``): the
                                       architecture cannot be trained by the proxy task, a legitimate low
                                       reward (0), as in MnasNet/AKD where such children score nothing
``worker-died``        infrastructure  a local worker process died (killed, taken by the out-of-memory
                                       killer): the process pool broke, failing every child it held
                                       (``BrokenProcessPool`` in :class:`search.executors.ProcessExecutor`)
``ray-task-died``      infrastructure  a Ray task, its worker process or its node died, or Ray could not
                                       run it (any ``ray.exceptions.RayError`` but ``RayTaskError``)
``out-of-memory``      infrastructure  ``MemoryError``, TensorFlow's ``ResourceExhaustedError``, or Ray's
                                       memory monitor killed the task (``ray.exceptions.OutOfMemoryError``)
``training-error``     infrastructure  TensorFlow or the model builder raised while training (another
                                       ``tf.errors.OpError``, a ``ValueError``, ``ArithmeticError``): a
                                       defect or a broken environment, not a score of the architecture
``conversion-failed``  infrastructure  exporting the child to ``.tflite`` for measurement raised (the
                                       converter, its parity check, writing or queueing the file)
``measurement-failed`` infrastructure  measuring the converted child on this host raised
``farm-job-failed``    infrastructure  the child's farm job failed: phones dropped until it used up its
                                       retries, or the phone's benchmark could not run or report it
``latency-unknown``    infrastructure  the latency table has no entry for one of the child's operators
``interrupted``        infrastructure  the search process stopped while the child was being evaluated
                                       (killed, crashed); found when the run resumes
=====================  ==============  =====================================================================

A worker death breaks the whole pool, so it fails every child the pool held, and nothing tells which
child killed it. Such a **shared** death (the pool held other children too) is recorded with each of them
but counts no attempt (``"counted": false`` in its ``attempt_failures`` entry); a child whose last attempt
ended in a worker death (a kind with ``alone``) then runs its next attempt with no other child in the
pool, so a death there is its own and counts. A child that keeps killing its worker is excluded after
``max_attempts`` deaths of its own; the healthy children beside it lose nothing but time.

Errors that concern every child at once are no child's failure: the database, the run's data or
teacher (``train_child`` raises them, ``RayTaskError`` carries them back), or a farm that no worker
serves within ``--wait-timeout`` (``WaitTimedOut``) stop the search, and running it again resumes it.
Neither a wait that timed out nor a pause with Ctrl-C counts as an attempt; a search process that dies
(killed, out of memory, a crash) counts its children's attempts as ``interrupted``.

The reasoning: a reward must be a measurement of the architecture. A diverged child was measured and
failed; every other failure is about where and how it ran, and would repeat or vanish regardless of
the architecture. Training errors other than divergence are infrastructure too: every architecture
of a space builds by construction, so an error there is a defect or an environment problem to fix,
not a score. No TensorFlow or Ray import here: exceptions of those libraries are recognised only when
the library is already loaded (an exception of a module never imported cannot exist).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from akd_tf.errors import AkdTfError, InvalidInput

ARCHITECTURE = "architecture"
INFRASTRUCTURE = "infrastructure"


@dataclass(frozen=True)
class FailureKind:
    """One row of the table in the module docstring: a kind of failure and whose fault it is."""

    name: str
    fault: str  # ARCHITECTURE | INFRASTRUCTURE
    description: str
    alone: bool = False  # the child's next attempt runs with no other child beside it (see the docstring)


FAILURE_KINDS: dict[str, FailureKind] = {kind.name: kind for kind in (
    FailureKind("diverged", ARCHITECTURE, "the child's training loss became NaN or infinite"),
    FailureKind("worker-died", INFRASTRUCTURE, "a local worker process died and broke the process pool",
                alone=True),
    FailureKind("ray-task-died", INFRASTRUCTURE, "a Ray task, its worker or its node died"),
    FailureKind("out-of-memory", INFRASTRUCTURE, "the child's training ran out of memory"),
    FailureKind("training-error", INFRASTRUCTURE, "TensorFlow or the model builder raised while training"),
    FailureKind("conversion-failed", INFRASTRUCTURE, "exporting the child to .tflite for measurement failed"),
    FailureKind("measurement-failed", INFRASTRUCTURE, "measuring the child on this host failed"),
    FailureKind("farm-job-failed", INFRASTRUCTURE, "the child's farm job failed (phones dropped, benchmark failed)"),
    FailureKind("latency-unknown", INFRASTRUCTURE, "the latency table lacks one of the child's operators"),
    FailureKind("interrupted", INFRASTRUCTURE, "the search stopped while the child was being evaluated"),
)}


@dataclass(frozen=True)
class Failure:
    """One failed evaluation attempt: its ``kind`` (a key of :data:`FAILURE_KINDS`) and a one-line ``reason``."""

    kind: str
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise InvalidInput(f"unknown failure kind {self.kind!r}; known: {', '.join(FAILURE_KINDS)}")

    @property
    def fault(self) -> str:
        return FAILURE_KINDS[self.kind].fault

    @property
    def is_infrastructure(self) -> bool:
        """True when the failure says nothing about the architecture: retried, then excluded from learning."""
        return self.fault == INFRASTRUCTURE


def failure_reason(exc: BaseException) -> str:
    """``"ExceptionType: first line of the message"``: how a failure's reason is recorded."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0] if message else ''}".strip()


def _is_instance(exc: BaseException, module: str, path: str) -> bool:
    """``isinstance(exc, module.path)`` if ``module`` is loaded (nothing of it can have been raised otherwise)."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return False
    cls = loaded
    for name in path.split("."):
        cls = getattr(cls, name, None)
        if cls is None:
            return False
    return isinstance(exc, cls)


def training_failure(exc: BaseException) -> Failure:
    """The failure of a child whose training raised ``exc`` (see the table)."""
    from akd_tf.distill import TrainingDiverged

    if isinstance(exc, TrainingDiverged):
        return Failure("diverged", failure_reason(exc))
    if isinstance(exc, MemoryError) or _is_instance(exc, "tensorflow", "errors.ResourceExhaustedError"):
        return Failure("out-of-memory", failure_reason(exc))
    return Failure("training-error", failure_reason(exc))


def ray_failure(exc: BaseException) -> Failure:
    """The failure of a Ray task that did not return (``exc`` a ``ray.exceptions.RayError``)."""
    reason = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {reason[-1] if reason else ''}".strip()
    if _is_instance(exc, "ray", "exceptions.OutOfMemoryError"):
        return Failure("out-of-memory", text)
    return Failure("ray-task-died", text)


def worker_died(reason: str) -> Failure:
    """A local worker process died and broke the pool (``reason``: the pool's message)."""
    return Failure("worker-died", f"worker died: {reason}")


def exclusion_groups(trials) -> list[dict]:
    """``[{"kind", "count", "reason"}]`` of excluded trials (``Trial`` rows) by the kind of their last failed
    attempt, most frequent first (ties: first seen); ``reason`` is that of the last such trial given."""
    groups: dict[str, dict] = {}
    for trial in trials:
        kind = trial.attempt_failures[-1]["kind"] if trial.attempt_failures else "unknown"
        group = groups.setdefault(kind, {"kind": kind, "count": 0, "reason": None})
        group["count"] += 1
        group["reason"] = trial.error
    return sorted(groups.values(), key=lambda group: -group["count"])


def describe_exclusions(groups: list[dict]) -> str:
    """``"farm-job-failed 2 (last: farm job 3 failed: ...); worker-died 1 (last: ...)"``."""
    return "; ".join(f"{g['kind']} {g['count']} (last: {g['reason']})" for g in groups)


class EveryChildExcluded(AkdTfError):
    """Every child of a controller step was excluded: the infrastructure, not the search, needs attention."""
