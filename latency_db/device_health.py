"""A phone's lease and health as the job queue sees them (columns of :class:`~latency_db.schema.Device`).

A phone is free when no worker holds an unexpired lease on it; only "online" phones with a recorded model
are leased. A run the phone answered (the job done, or failed by its own fault) resets its
``consecutive_failures`` and sets ``last_seen_at``; a run lost to the phone (transport dropped, device
vanished) adds one, and at ``offline_after`` failures in a row the phone becomes "offline", so no worker
leases it until it is checked again. Every write names the worker that must hold the lease, so a stale
worker never releases another's phone. The session functions run inside the queue's transactions
(:mod:`latency_db.queue`), which lock devices last.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from latency_db.schema import Device


def phone_free(now: datetime):
    """The SQL condition of a phone that no worker holds at ``now``."""
    return or_(Device.lease_holder.is_(None), Device.lease_expires_at.is_(None), Device.lease_expires_at < now)


def phone_id_of(session: Session, name: str) -> int | None:
    """The id of the device named ``name``, or None."""
    return session.scalar(select(Device.id).where(Device.name == name))


def free_phones(session: Session, names: list[str], now: datetime) -> list[Device]:
    """The phones among ``names`` that can be leased at ``now`` (online, with a model, free), by name,
    locked; rows another transaction holds are skipped (PostgreSQL)."""
    return session.scalars(
        select(Device).where(Device.name.in_(names), Device.status == "online", Device.model.is_not(None),
                             phone_free(now))
        .order_by(Device.name).with_for_update(skip_locked=True)).all()


def other_online_phones(session: Session, model: str, phone_id: int) -> int:
    """How many online phones of ``model`` there are besides phone ``phone_id``."""
    return session.scalar(select(func.count()).select_from(Device).where(
        Device.model == model, Device.status == "online", Device.id != phone_id))


def clear_expired_leases(session: Session, now: datetime) -> None:
    """Clear the phone leases that expired before ``now``; rows another transaction holds are skipped."""
    device_ids = session.scalars(select(Device.id).where(Device.lease_expires_at < now)
                                 .with_for_update(skip_locked=True)).all()
    if device_ids:
        session.execute(update(Device).where(Device.id.in_(device_ids), Device.lease_expires_at < now)
                        .values(lease_holder=None, lease_expires_at=None).execution_options(synchronize_session=False))


def lease_phone(session: Session, phone_id: int, worker: str, expires_at: datetime, now: datetime) -> bool:
    """Lease phone ``phone_id`` to ``worker`` until ``expires_at`` if it is still online and free at ``now``."""
    return session.execute(
        update(Device).where(Device.id == phone_id, Device.status == "online", phone_free(now))
        .values(lease_holder=worker, lease_expires_at=expires_at)
        .execution_options(synchronize_session=False)).rowcount == 1


def renew_phone_lease(session: Session, phone_id: int, worker: str, expires_at: datetime) -> bool:
    """Extend ``worker``'s lease of phone ``phone_id`` to ``expires_at``; False if ``worker`` no longer holds it."""
    return session.execute(
        update(Device).where(Device.id == phone_id, Device.lease_holder == worker)
        .values(lease_expires_at=expires_at).execution_options(synchronize_session=False)).rowcount == 1


def phone_answered(session: Session, phone_id: int, worker: str, now: datetime) -> None:
    """The phone ran a job to its end: release ``worker``'s lease, reset its failures, seen at ``now``."""
    _release_phone(session, phone_id, worker, consecutive_failures=0, last_seen_at=now)


def phone_failed(session: Session, phone_id: int, worker: str, offline_after: int) -> None:
    """The phone lost a run: release ``worker``'s lease and count the failure; "offline" at ``offline_after``."""
    failures = Device.consecutive_failures + 1
    _release_phone(session, phone_id, worker, consecutive_failures=failures,
                   status=case((failures >= offline_after, "offline"), else_=Device.status))


def _release_phone(session: Session, phone_id: int, worker: str, **values) -> None:
    """Clear the phone's lease if ``worker`` holds it, and set ``values`` on the phone either way."""
    session.execute(update(Device).where(Device.id == phone_id, Device.lease_holder == worker)
                    .values(lease_holder=None, lease_expires_at=None).execution_options(synchronize_session=False))
    if values:
        session.execute(update(Device).where(Device.id == phone_id).values(**values)
                        .execution_options(synchronize_session=False))
