"""Which phones a farm worker serves, and what a requester waiting on the farm is told.

Each worker stamps, per phone, when it last asked for work. A requester waiting on the farm
(:func:`latency_db.queue.wait_for`) logs what it waits for (:func:`log_wait`: jobs per phone, queued or
leased, done and failed so far) and reads the stamps to tell a phone nobody serves (no ``akd-tf devices
serve`` for it, or its worker stopped or died) from a phone that is only busy. A job may run on any online
phone of its pool (the requested phone's model), so a pool counts as served when any of its phones is. The
lines go to the ``latency_db.farm`` logger (the CLI prints them on stderr; a library user configures logging).

A worker that stops removes its stamps (:func:`release_polls`); one that dies leaves them to age past
``SERVED_WITHIN_S``. A starting worker reads them too (:func:`served_by_others`), so that by default it
leaves alone the phones another live worker serves.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from latency_db.devices import get_device
from latency_db.schema import Device, FarmPoll, Job, as_utc, utcnow
from latency_db.store import Store

log = logging.getLogger("latency_db.farm")

SERVED_WITHIN_S = 30.0  # a pool whose phones no worker asked work for in this long counts as unserved
STAMP_EVERY_S = 5.0  # how often a worker's phone thread refreshes its stamp (well inside SERVED_WITHIN_S)


def stamp_poll(store: Store, worker: str, device_name: str, now: datetime | None = None) -> None:
    """Record that ``worker`` asked for work for phone ``device_name`` at ``now`` (one row per phone)."""
    now = now or utcnow()
    with store.session() as session:
        device_id = get_device(session, device_name).id
        updated = session.execute(update(FarmPoll).where(FarmPoll.device_id == device_id)
                                  .values(worker=worker, polled_at=now)).rowcount
    if updated:
        return
    try:
        with store.session() as session:
            session.add(FarmPoll(device_id=device_id, worker=worker, polled_at=now))
    except IntegrityError:  # another worker stamped this phone first: stamp over it
        with store.session() as session:
            session.execute(update(FarmPoll).where(FarmPoll.device_id == device_id)
                            .values(worker=worker, polled_at=now))


def release_polls(store: Store, worker: str) -> int:
    """Remove ``worker``'s stamps: it stopped serving its phones. Returns how many were removed."""
    with store.session() as session:
        return session.execute(delete(FarmPoll).where(FarmPoll.worker == worker)
                               .execution_options(synchronize_session=False)).rowcount


@dataclass(frozen=True)
class OtherWorker:
    """A worker that serves a phone now: it asked for work for it at ``polled_at`` (None: no recent stamp)
    or holds the phone's lease until ``lease_expires_at`` (None: no lease), or both."""

    worker: str
    polled_at: datetime | None
    lease_expires_at: datetime | None


def served_by_others(session: Session, names: list[str], worker: str, now: datetime | None = None,
                     within_s: float = SERVED_WITHIN_S) -> dict[str, OtherWorker]:
    """The phones among ``names`` that a worker other than ``worker`` serves at ``now``: it asked for work for
    the phone within ``within_s``, or holds the phone's lease (busy with a job, however old its stamp)."""
    now = now or utcnow()
    horizon = now - timedelta(seconds=within_s)
    found: dict[str, OtherWorker] = {}
    rows = session.execute(select(Device.name, Device.lease_holder, Device.lease_expires_at, FarmPoll.worker,
                                  FarmPoll.polled_at)
                           .outerjoin(FarmPoll, FarmPoll.device_id == Device.id).where(Device.name.in_(names)))
    for name, holder, expires, poller, polled_at in rows:
        expires, polled_at = (None if t is None else as_utc(t) for t in (expires, polled_at))
        leased = holder is not None and holder != worker and expires is not None and expires > now
        stamped = poller is not None and poller != worker and polled_at >= horizon
        if leased or stamped:
            found[name] = OtherWorker(holder if leased else poller, polled_at if stamped else None,
                                      expires if leased else None)
    return found


def unserved_pools(session: Session, pools: set[str], now: datetime | None = None,
                   within_s: float = SERVED_WITHIN_S) -> dict[str, datetime | None]:
    """The pools (phone models) among ``pools`` none of whose phones holds a lease or was asked work for by a
    worker within ``within_s``: pool -> the last time any worker asked (None: never)."""
    now = now or utcnow()
    last: dict[str, datetime | None] = {pool: None for pool in pools}
    rows = session.execute(select(Device.model, FarmPoll.polled_at).join(FarmPoll, FarmPoll.device_id == Device.id)
                           .where(Device.model.in_(pools))).all()
    for pool, polled_at in rows:
        polled_at = as_utc(polled_at)
        if last[pool] is None or polled_at > last[pool]:
            last[pool] = polled_at
    leased = {_pool for _pool, expires in session.execute(
        select(Device.model, Device.lease_expires_at).where(Device.model.in_(pools),
                                                            Device.lease_expires_at.is_not(None))).all()
              if as_utc(expires) > now}  # a phone busy with a job is served, however long the job takes
    horizon = now - timedelta(seconds=within_s)
    return {pool: when for pool, when in last.items()
            if pool not in leased and (when is None or when < horizon)}


def log_wait(store: Store, pending_ids: list[int], done: int, failed: int, total: int,
             now: datetime | None = None) -> None:
    """Log what a wait on the farm still waits for and, as a warning, each pool of it that no worker serves."""
    now = now or utcnow()
    with store.session() as session:
        rows = session.execute(select(Device.name, Job.pool, Job.state).join(Device, Device.id == Job.device_id)
                               .where(Job.id.in_(pending_ids))).all()
        unserved = unserved_pools(session, {pool for _name, pool, _state in rows}, now)
    states: dict[str, Counter] = defaultdict(Counter)
    for name, _pool, state in rows:
        states[name][state] += 1
    per_phone = "; ".join(f"{name}: " + ", ".join(f"{n} {state}" for state, n in sorted(counter.items()))
                          for name, counter in sorted(states.items()))
    log.info("farm: waiting for %d of %d job(s) (%d done, %d failed) - %s", len(pending_ids), total, done, failed,
             per_phone)
    for pool, last in sorted(unserved.items(), key=lambda item: item[0]):
        names = sorted({name for name, job_pool, _state in rows if job_pool == pool})
        seen = ("no worker asks for work for it" if last is None
                else f"a worker asked for work last {int((now - last).total_seconds())} s ago")
        log.warning("farm: no `akd-tf devices serve` worker serves %s (model %s; %s): "
                    "start one on the host the phone is attached to: akd-tf devices serve --device %s",
                    ", ".join(names), pool, seen, names[0])
