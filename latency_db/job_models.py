"""The ``.tflite`` bytes that farm jobs measure, stored once per SHA-256 in ``job_models``.

A job names its model by hash (:class:`~latency_db.schema.JobModel`); the bytes are not in the job row, so
leasing, renewing and completing a job never read or rewrite them, and a model that many jobs measure (a
LUT operator, a calibration model) is stored once. A worker reads the bytes after leasing with
:func:`model_bytes`. They are kept while a queued, leased or failed job names them; the completion of the
last such job releases them (sets them to NULL; the row, with hash and size, stays). So a shared database
does not keep megabytes per measured architecture for ever, a failed job's model can still be inspected,
and submitting the model again stores its bytes again.

The session functions run inside the queue's transactions (:mod:`latency_db.queue`), which claim rows in
one order: jobs, then job models by hash (:func:`lock_models`), then devices.
"""

from __future__ import annotations

from hashlib import sha256

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from akd_tf.errors import MissingData
from latency_db.arguments import bounded_name
from latency_db.schema import Job, JobModel, utcnow
from latency_db.store import Store


class ModelBytesUnavailable(MissingData):
    """A job's ``.tflite`` bytes are not stored (released) or do not match its SHA-256 (corrupt)."""


def lock_models(session: Session, digests) -> dict[str, int | None]:
    """Lock the job-model rows of ``digests`` (in hash order); ``{hash: stored byte count or None}`` of those
    that exist (None: bytes released). The bytes themselves are not read.

    The lock is PostgreSQL's ``FOR NO KEY UPDATE``: it excludes other lockers of the row but not the
    ``FOR KEY SHARE`` lock that PostgreSQL's foreign-key check takes when a transaction updates a job row
    it already updated (as ``complete`` does). With ``FOR UPDATE`` two completions of jobs sharing a model
    would each hold that share lock and wait for the other to upgrade: a deadlock.
    """
    rows = session.execute(select(JobModel.sha256, func.length(JobModel.tflite)).where(
        JobModel.sha256.in_(sorted(set(digests)))).order_by(JobModel.sha256).with_for_update(key_share=True)).all()
    return dict(rows)


def store_model(session: Session, tflite: bytes | None, digest: str, size_bytes: int) -> None:
    """Make sure job model ``digest`` exists, with its bytes unless ``tflite`` is None; its row stays locked.

    Bytes already stored are not written again; released ones are stored again.
    """
    for _ in range(2):
        stored = lock_models(session, [digest])
        if digest in stored:
            if stored[digest] is None and tflite is not None:
                session.execute(update(JobModel).where(JobModel.sha256 == digest)
                                .values(tflite=bytes(tflite)).execution_options(synchronize_session=False))
            return
        try:
            with session.begin_nested():
                session.execute(insert(JobModel).values(sha256=digest, size_bytes=size_bytes, created_at=utcnow(),
                                                        tflite=None if tflite is None else bytes(tflite)))
            return
        except IntegrityError:  # another process stored it between our select and insert: lock theirs
            continue
    raise RuntimeError(f"job model {digest} could neither be inserted nor found")


def release_unneeded_models(session: Session, digests) -> None:
    """Release the bytes of the job models in ``digests`` that no queued, leased or failed job names.

    The rows are locked first, so each check below runs after any enqueue of the same model that got the
    lock earlier has committed (on PostgreSQL every statement then sees it).
    """
    locked = lock_models(session, digests)
    session.flush()
    for digest, size in locked.items():
        if size is None:
            continue
        needed = session.scalar(select(Job.id).where(Job.model_sha256 == digest, Job.state != "done").limit(1))
        if needed is None:
            session.execute(update(JobModel).where(JobModel.sha256 == digest).values(tflite=None)
                            .execution_options(synchronize_session=False))


def model_bytes(store: Store, model_sha256: str) -> bytes:
    """The stored ``.tflite`` bytes of job model ``model_sha256`` (hex), checked against the hash.

    One plain ``SELECT`` by hash; nothing is locked. Raises :class:`ModelBytesUnavailable` when the bytes
    were released (every job naming them is done) or are missing, and when they do not hash to
    ``model_sha256``; corrupt bytes are then released, so submitting the model again stores them afresh.
    """
    bounded_name("model_sha256", model_sha256, 64)
    with store.session() as session:
        data = session.scalar(select(JobModel.tflite).where(JobModel.sha256 == model_sha256))
    if data is None:
        raise ModelBytesUnavailable(f"the .tflite bytes of model {model_sha256} are not stored (released once "
                                    f"every job naming them was done); submit the request again to store them")
    actual = sha256(data).hexdigest()
    if actual != model_sha256:
        with store.session() as session:
            session.execute(update(JobModel).where(JobModel.sha256 == model_sha256).values(tflite=None)
                            .execution_options(synchronize_session=False))
        raise ModelBytesUnavailable(f"the stored .tflite bytes of model {model_sha256} are corrupt: {len(data)} "
                                    f"bytes with SHA-256 {actual}; they were dropped, submit the request again "
                                    f"to store them afresh")
    return bytes(data)
