"""``EmulatedPhone``: an adbd on loopback TCP in front of an emulated Pixel phone.

    with EmulatedPhone("pixel4") as phone:
        device = AdbDeviceTcp("127.0.0.1", phone.port)
        device.connect(rsa_keys=[signer])
        device.shell("getprop ro.product.model")   # "Pixel 4\\n"

The phone's files live under ``root`` (a directory inside ``state_dir``); its accepted host keys in
``authorized_keys_path`` (adbd's ``adb_keys`` format). Give the same ``state_dir`` again and the phone keeps
its pushed files and keys; without one, a temporary directory is used and removed by :meth:`stop`.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
from pathlib import Path

from devicefarm.emulator.auth import AuthorizedKeys
from devicefarm.emulator.connection import AdbConnection
from devicefarm.emulator.devicetree import populate
from devicefarm.emulator.faults import Faults
from devicefarm.emulator.profiles import PhoneProfile, get_profile
from devicefarm.emulator.sandbox import Sandbox
from devicefarm.emulator.services import service_factory
from devicefarm.emulator.state import BM_FORMATS, PhoneState
from devicefarm.emulator.thermal import ThermalModel

_LOG = logging.getLogger(__name__)
_JOIN_TIMEOUT_S = 5.0


class EmulatedPhone:
    """An emulated phone reachable over ADB on ``host:port`` (``port=0``: any free port).

    ``profile`` is a name from :data:`~devicefarm.emulator.profiles.PROFILES` or a ``PhoneProfile``;
    ``accept_new_keys`` whether an unknown host key is accepted (changeable at run time); ``faults`` a
    :class:`Faults` (changeable at run time through ``.faults``); ``bm_format`` the summary format of
    ``benchmark_model`` (``recent``, ``older`` or ``oldest``). ``address``, ``port``, ``serial``, ``root``,
    ``authorized_keys_path``, ``command_log``, ``taskset_log``, ``benchmark_runs`` and
    ``fixed_performance_mode`` are available once :meth:`start` has run.
    """

    def __init__(self, profile: str | PhoneProfile = "pixel4", *, host: str = "127.0.0.1", port: int = 0,
                 state_dir: str | Path | None = None, accept_new_keys: bool = True, faults: Faults | None = None,
                 bm_format: str = "recent"):
        if bm_format not in BM_FORMATS:
            raise ValueError(f"bm_format must be one of {', '.join(BM_FORMATS)}, got {bm_format!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int 0..65535, got {port!r}")
        if faults is not None and not isinstance(faults, Faults):
            raise ValueError(f"faults must be a Faults instance or None, got {faults!r}")
        if not isinstance(accept_new_keys, bool):
            raise ValueError(f"accept_new_keys must be a bool, got {accept_new_keys!r}")
        self.profile = get_profile(profile)
        self.faults = faults if faults is not None else Faults()
        self._host, self._requested_port, self._bm_format = host, port, bm_format
        self._accept_new_keys = accept_new_keys
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._owns_state_dir = False
        self._state: PhoneState | None = None
        self._keys: AuthorizedKeys | None = None
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: dict[AdbConnection, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._port = 0

    # lifecycle
    def start(self) -> "EmulatedPhone":
        """Bind, write the phone's file tree, and serve connections in daemon threads; returns ``self``."""
        if self._listener is not None or self._stopping:
            raise RuntimeError("an EmulatedPhone can be started once")
        listener = socket.create_server((self._host, self._requested_port))
        port = self._port = listener.getsockname()[1]
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix=f"emulated-{self.profile.name}-"))
            self._owns_state_dir = True
        root = self._state_dir / "root"
        root.mkdir(parents=True, exist_ok=True)
        populate(root, self.profile)
        self._state = PhoneState(self.profile, f"EMU{port}", Sandbox(root), self.faults, self._bm_format,
                                 ThermalModel(self.profile))
        self._state.accept_new_keys = self._accept_new_keys
        self._state.refresh_sensor_files()
        self._keys = AuthorizedKeys(self._state_dir / "adb_keys")
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name=f"adb-{self._state.serial}-accept")
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, reset every connection, and remove the temporary state directory if one was made."""
        if self._listener is None or self._stopping:
            return
        self._stopping = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError as exc:
            _LOG.debug("listener shutdown: %s", exc)
        self._listener.close()
        self._accept_thread.join(_JOIN_TIMEOUT_S)
        with self._lock:
            connections = dict(self._connections)
        for connection, thread in connections.items():
            connection.abort()
            thread.join(_JOIN_TIMEOUT_S)
        if self._owns_state_dir:
            shutil.rmtree(self._state_dir)

    def __enter__(self) -> "EmulatedPhone":
        return self.start() if self._listener is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        services = service_factory(self._state)
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed by stop()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = AdbConnection(sock, self._state, self._keys, services)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True,
                                      name=f"adb-{self._state.serial}-connection")
            with self._lock:
                if self._stopping:
                    sock.close()
                    return
                self._connections[connection] = thread
            thread.start()

    def _serve(self, connection: AdbConnection) -> None:
        try:
            connection.serve()
        finally:
            with self._lock:
                self._connections.pop(connection, None)

    # attributes available once started
    def _started(self) -> PhoneState:
        if self._state is None:
            raise RuntimeError("the EmulatedPhone is not started; call start() or use it in a with block")
        return self._state

    @property
    def port(self) -> int:
        self._started()
        return self._port

    @property
    def address(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def serial(self) -> str:
        return self._started().serial

    @property
    def root(self) -> Path:
        return self._started().sandbox.root

    @property
    def authorized_keys_path(self) -> Path:
        self._started()
        return self._keys.path

    @property
    def command_log(self) -> list[str]:
        return self._started().command_log

    @property
    def taskset_log(self) -> list[tuple[int, str]]:
        return self._started().taskset_log

    @property
    def benchmark_runs(self) -> int:
        """How many ``benchmark_model`` runs have timed a model on this phone (faults name runs by number)."""
        return self._started().benchmark_runs

    @property
    def fixed_performance_mode(self) -> bool | None:
        return self._started().fixed_performance_mode

    @property
    def accept_new_keys(self) -> bool:
        return self._state.accept_new_keys if self._state is not None else self._accept_new_keys

    @accept_new_keys.setter
    def accept_new_keys(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ValueError(f"accept_new_keys must be a bool, got {value!r}")
        self._accept_new_keys = value
        if self._state is not None:
            self._state.accept_new_keys = value

    def temperatures(self) -> dict[str, float]:
        """The current reading of every thermal sensor by its HAL name (degrees C)."""
        return {sensor.hal_name: celsius for sensor, celsius in self._started().temperatures()}

    def __repr__(self) -> str:
        where = self.address if self._state is not None else "not started"
        return f"EmulatedPhone({self.profile.name!r}, {where})"
