"""The job queue as people read it: how many jobs are in each state and the newest jobs, as rows.

Read-only; the queue itself (enqueue, lease, complete, wait) is :mod:`latency_db.queue`.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from akd_tf.errors import InvalidInput
from latency_db.arguments import positive_int
from latency_db.queue import STATES
from latency_db.schema import Job
from latency_db.store import Store

ERROR_CHARS = 80  # a job row shows the first this many characters of its error


def job_summary(session: Session) -> dict[str, int]:
    """How many jobs are in each state, every state named (in the order of ``STATES``)."""
    counts = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    return {state: counts.get(state, 0) for state in STATES}


def list_jobs(session: Session, state: str | None = None, limit: int = 50) -> list[Job]:
    """The newest ``limit`` jobs, newest first, optionally only those in ``state``."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}, got {state!r}")
    positive_int("limit", limit)
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Job.state == state)
    return list(session.scalars(query))


def attempts_shown(job: Job) -> int:
    """The runs of ``job`` on a phone so far, the one in progress and the one that succeeded included.

    ``Job.attempts`` counts only the runs that failed (it decides when a job gives up), so a job done at
    its first run holds 0; a done or leased job has had one run more. A run lost with its worker (its
    lease expired) is in neither count.
    """
    return job.attempts + (1 if job.state in ("done", "leased") else 0)


def job_table(store: Store, *, state: str | None = None, limit: int = 50) -> tuple[dict[str, int], list[dict]]:
    """(:func:`job_summary`, one row per job of :func:`list_jobs`): what ``akd-tf devices jobs`` shows.

    A row is ``{"id", "kind", "state", "pool", "attempts", "lease_holder", "error"}``, ``attempts`` being
    :func:`attempts_shown` and the error cut to ``ERROR_CHARS`` characters ("" when none). ValueError for
    an unknown ``state`` or a ``limit`` < 1.
    """
    with store.session() as session:
        summary = job_summary(session)
        rows = [{"id": j.id, "kind": j.kind, "state": j.state, "pool": j.pool, "attempts": attempts_shown(j),
                 "lease_holder": j.lease_holder, "error": (j.error or "")[:ERROR_CHARS]}
                for j in list_jobs(session, state=state, limit=limit)]
    return summary, rows
