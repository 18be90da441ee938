"""What the database holds per device (for `akd-tf latency list`)."""

from __future__ import annotations

from sqlalchemy import func, select

from latency_db.devices import list_devices
from latency_db.schema import Calibration, LutEntry, Measurement
from latency_db.store import Store


def inventory(store: Store) -> list[dict]:
    with store.session() as session:
        devices = list_devices(session)

        def counts(model):
            return dict(session.execute(select(model.device_id, func.count()).group_by(model.device_id)).all())

        lut, measurements, calibrations = counts(LutEntry), counts(Measurement), counts(Calibration)
        return [{"device": d.name, "kind": d.kind, "status": d.status, "lut_entries": lut.get(d.id, 0),
                 "measurements": measurements.get(d.id, 0), "calibrations": calibrations.get(d.id, 0),
                 "runtime": d.runtime or ""} for d in devices]
