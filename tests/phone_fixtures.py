"""Emulated phones stored as registration stores them, without registration's probe measurement (seconds of
export, covered in test_farm)."""

from pathlib import Path

from devicefarm.connection import PhoneConnection
from latency_db.schema import Device

WORKDIR = "/data/local/tmp/akd-tf"
BINARY = f"{WORKDIR}/benchmark_model"


def install_phone(store, phone, name: str, model: str = "Pixel 4") -> None:
    """Store emulated ``phone`` as device ``name`` of ``model`` (its pool), measured on core 7, with a
    benchmark_model in place (the emulator runs its own for any file)."""
    with PhoneConnection(phone.address) as conn:
        conn.run(["mkdir", "-p", WORKDIR])
        conn.push(Path(__file__), BINARY, mode=0o755)
    with store.session() as session:
        session.add(Device(name=name, kind="adb", model=model, address=phone.address, serial=phone.serial, core=7,
                           governor="schedutil", runtime="benchmark_model", benchmark_binary=BINARY,
                           status="online", properties={"workdir": WORKDIR}))
