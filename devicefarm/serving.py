"""Which registered phones a farm worker on this host serves, and why it leaves the others out.

By default (:func:`plan_serving` without names) a worker serves the registered phones that this host
reaches and that no other live worker serves: each phone's ADB address must accept a connection and this
computer's key within ``reach_timeout_s`` (all phones are tried at once, so the wait is one timeout,
not one per phone), and no other worker may have asked for work for it within
:data:`latency_db.farm_polls.SERVED_WITHIN_S` or hold its lease. A phone attached to another host (a USB
serial, an address this host cannot route to, a key it never accepted) is left out with the error that
showed it, and so is a phone another worker serves, with that worker's name; when nothing is left,
:class:`NothingToServe` says why for each phone. Phones named by the user are served whatever the checks
find; what they found is returned as warnings. Probing writes nothing to the database: a phone another
host serves keeps its status.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from akd_tf.errors import DeviceError, InvalidInput
from devicefarm.adbkeys import ensure_key_pair
from devicefarm.connection import PhoneConnection, PhoneUnavailable
from latency_db.devices import get_device, phone_names
from latency_db.farm_polls import SERVED_WITHIN_S, OtherWorker, served_by_others
from latency_db.schema import utcnow
from latency_db.store import Store

PHONE_KIND = "adb"
REACH_TIMEOUT_S = 5.0  # default time a phone gets to accept the connection and this computer's key
NO_PHONES = "no phones registered; add one with `akd-tf devices register HOST:PORT`"


class NothingToServe(DeviceError):
    """No registered phone is reachable from this host and free of other workers; the message says why, per
    phone."""


@dataclass(frozen=True)
class LeftOut:
    """A phone the checks found wanting: not served by default, served with a warning when named."""

    name: str
    address: str | None
    unreachable: bool  # False: another worker serves it
    reason: str  # "unreachable: <error>" or "served by worker W, ..."

    def line(self) -> str:
        return f"{self.name} ({self.address or 'no address'}): {self.reason}"


@dataclass(frozen=True)
class ServePlan:
    """The phones to serve, and those the checks found wanting (left out by default; served when named)."""

    served: list[str]
    left_out: list[LeftOut]
    named: bool  # True when the user named the phones: they are served whatever ``left_out`` says

    def notes(self) -> list[str]:
        """One line per phone the checks found wanting, saying what happens to it."""
        if self.named:
            return [f"Warning: {item.line()}; "
                    + ("serving it all the same: a job it fails goes back to the queue, and after 3 failures in a "
                       "row it counts as offline until it answers" if item.unreachable
                       else "serving it all the same: the two workers take turns")
                    for item in self.left_out]
        return [f"not serving {item.line()}" for item in self.left_out]


def reach(address: str | None, *, key_path: Path | str | None = None,
          timeout_s: float = REACH_TIMEOUT_S) -> str | None:
    """None when ``address`` accepts an ADB connection and this computer's key within about ``timeout_s``
    (the TCP connection, then the key exchange), else why not (one line)."""
    if not address:
        return "no ADB address registered"
    try:
        conn = PhoneConnection(address, key_path=key_path, connect_timeout_s=timeout_s, auth_timeout_s=timeout_s,
                               retries=0)
        try:
            conn.connect()
        finally:
            conn.close()
    except (PhoneUnavailable, InvalidInput) as error:
        return str(error)
    return None


def reach_all(addresses: dict[str, str | None], *, key_path: Path | str | None = None,
              timeout_s: float = REACH_TIMEOUT_S) -> dict[str, str | None]:
    """:func:`reach` for every ``name -> address`` at once; a phone still trying after twice ``timeout_s``
    and a second (a name lookup that hangs, a peer that answers byte by byte) counts as unreachable."""
    errors: dict[str, str | None] = {}
    key_path = ensure_key_pair(key_path)  # once, before the threads: each would otherwise make one at once

    def one(name: str, address: str | None) -> None:
        try:
            errors[name] = reach(address, key_path=key_path, timeout_s=timeout_s)
        except Exception as error:  # a defect must show as this phone's error, not as a silent thread's death
            errors[name] = f"unexpected {type(error).__name__}: {error}"

    threads = [threading.Thread(target=one, args=item, daemon=True, name=f"akd-tf-reach-{item[0]}")
               for item in addresses.items()]
    for thread in threads:
        thread.start()
    bound_s = 2 * timeout_s + 1.0
    deadline = time.monotonic() + bound_s
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return {name: errors[name] if name in errors else f"no answer within {bound_s:g} s" for name in addresses}


def _other_worker_reason(other: OtherWorker, now) -> str:
    parts = []
    if other.lease_expires_at is not None:
        parts.append(f"busy with one of its jobs (lease until {other.lease_expires_at:%H:%M:%S} UTC)")
    if other.polled_at is not None:
        parts.append(f"asked for work {max(0, int((now - other.polled_at).total_seconds()))} s ago")
    return f"served by worker {other.worker}, {' and '.join(parts)}"


def _phones(store: Store, names: list[str] | None) -> dict[str, str | None]:
    """``name -> address`` of the named phones (checked: stored, phones), or of every registered phone."""
    if names is None:
        names = phone_names(store)
    with store.session() as session:
        addresses = {}
        for name in dict.fromkeys(names):
            device = get_device(session, name)
            if device.kind != PHONE_KIND:
                raise InvalidInput(f"device {name!r} is a {device.kind!r} device; workers serve registered phones")
            addresses[name] = device.address
    return addresses


def plan_serving(store: Store, names: list[str] | None = None, *, worker_id: str,
                 key_path: Path | str | None = None, reach_timeout_s: float = REACH_TIMEOUT_S) -> ServePlan:
    """The phones worker ``worker_id`` serves: ``names`` (each checked, served whatever the checks find), or by
    default every registered phone this host reaches that no other worker serves.

    Raises MissingData for an unknown name, InvalidInput for a device that is not a phone, and (by default
    only) :class:`NothingToServe` when no phone is registered or none passes, naming each phone and why.
    """
    if reach_timeout_s <= 0:
        raise InvalidInput(f"reach_timeout_s must be > 0, got {reach_timeout_s!r}")
    named = names is not None
    phones = _phones(store, names)
    if not phones:
        raise NothingToServe(NO_PHONES)
    now = utcnow()
    with store.session() as session:
        others = served_by_others(session, list(phones), worker_id, now)
    left_out = [LeftOut(name, phones[name], False, _other_worker_reason(others[name], now)) for name in phones
                if name in others]
    to_probe = {name: address for name, address in phones.items() if named or name not in others}
    errors = reach_all(to_probe, key_path=key_path, timeout_s=reach_timeout_s)
    left_out += [LeftOut(name, phones[name], True, f"unreachable: {error}") for name, error in errors.items()
                 if error is not None]
    left_out.sort(key=lambda item: list(phones).index(item.name))
    if named:
        return ServePlan(list(phones), left_out, named=True)
    served = [name for name in phones if name not in others and errors.get(name) is None]
    if not served:
        raise NothingToServe(_nothing_to_serve(len(phones), left_out, any(name in others for name in phones)))
    return ServePlan(served, left_out, named=False)


def _nothing_to_serve(registered: int, left_out: list[LeftOut], some_served_elsewhere: bool) -> str:
    phones = "the registered phone" if registered == 1 else f"any of the {registered} registered phones"
    lines = [f"no phone to serve from this host: it cannot serve {phones}:",
             *(f"  {item.line()}" for item in left_out),
             "Serve each phone from the host it is attached to (`akd-tf devices check NAME` says how one is "
             "doing), or name it with --device to serve it from here all the same."]
    if some_served_elsewhere:
        lines.append(f"A worker that was killed stops counting {SERVED_WITHIN_S:g} s after it last asked for "
                     "work, or when its lease runs out.")
    return "\n".join(lines)
