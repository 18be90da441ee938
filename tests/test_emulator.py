"""The emulated phone over real TCP: the adb-shell client (and the adb binary, where installed) against it."""

import dataclasses
import hashlib
import io
import os
import shutil
import socket
import struct
import re
import subprocess
import time

import pytest
import tf_keras as keras
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.auth.sign_pythonrsa import PythonRSASigner
from adb_shell.exceptions import AdbCommandFailureException, PushFailedError, TcpTimeoutException

from akd_tf import export
from akd_tf.benchmark import RunSettings
from devicefarm.adb_wire import (A_AUTH, A_CLSE, A_CNXN, A_OKAY, A_OPEN, A_VERSION_MIN, A_VERSION_SKIP_CHECKSUM,
                                 A_WRTE, AUTH_RSAPUBLICKEY, AUTH_TOKEN, HEADER_FORMAT, ConnectionClosed, Message,
                                 ProtocolError, checksum, pack_message, read_message, unpack_header)
from devicefarm.benchmark_output import BenchmarkOutputError, parse_benchmark_output
from devicefarm.emulator import PROFILES, EmulatedPhone, Faults, benchmark_tool

TMP = "/data/local/tmp"
BANNER = b"device::ro.product.name=flame;ro.product.model=Pixel 4;ro.product.device=flame;features=shell_v2,cmd"
BENCH_ARGS = "--num_threads=1 --num_runs=3 --warmup_runs=1 --min_secs=0.01 --warmup_min_secs=0"
SETTINGS = RunSettings(num_threads=1, num_runs=3, warmup_runs=1, min_secs=0.01, warmup_min_secs=0.0)


@pytest.fixture(scope="module")
def tflite_path(tiny_space, tmp_path_factory):
    keras.backend.clear_session()
    model = export.build_for_export(tiny_space.sample_many(1, seed=0)[0], (32, 32, 3), 10)
    path = tmp_path_factory.mktemp("model") / "tiny.tflite"
    path.write_bytes(export.convert(model))
    return path


@pytest.fixture
def phone():
    with EmulatedPhone("pixel4") as running:
        yield running


def connect(phone, key_path, auth_timeout_s=5.0):
    device = AdbDeviceTcp("127.0.0.1", phone.port, default_transport_timeout_s=5.0)
    device.connect(rsa_keys=[PythonRSASigner.FromRSAKeyPath(key_path)], auth_timeout_s=auth_timeout_s)
    return device


@pytest.fixture
def device(phone, key_paths):
    connected = connect(phone, key_paths[0])
    yield connected
    connected.close()


class RawHost:
    """A bare ADB host over a plain socket, built from devicefarm.adb_wire."""

    def __init__(self, port, version=A_VERSION_MIN):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        self.version = version

    def send(self, command, arg0, arg1, payload=b"", crc=None):
        packet = bytearray(pack_message(command, arg0, arg1, payload, version=self.version))
        if crc is not None:
            struct.pack_into("<I", packet, 16, crc)
        self.sock.sendall(packet)

    def recv(self):
        return read_message(self.sock, version=self.version)

    def handshake(self, key_path, maxdata=4096):
        self.send(A_CNXN, self.version, maxdata, b"host::\0")
        token = self.recv()
        assert (token.command, token.arg0, token.arg1, len(token.payload)) == (A_AUTH, AUTH_TOKEN, 0, 20)
        with open(key_path + ".pub", "rb") as stream:
            self.send(A_AUTH, AUTH_RSAPUBLICKEY, 0, stream.read() + b"\0")
        return self.recv()

    def closed_by_peer(self):
        self.sock.settimeout(5.0)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def nothing_pending(self, wait_s=0.3):
        self.sock.settimeout(wait_s)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(5.0)
        return False

    def close(self):
        self.sock.close()


def test_wire_primitives_pack_and_validate():
    packet = pack_message(A_WRTE, 1, 2, b"\x01\xff", version=A_VERSION_MIN)
    assert packet == struct.pack(HEADER_FORMAT, A_WRTE, 1, 2, 2, 256, A_WRTE ^ 0xFFFFFFFF) + b"\x01\xff"
    assert pack_message(A_WRTE, 1, 2, b"\x01\xff", version=A_VERSION_SKIP_CHECKSUM)[16:20] == bytes(4)
    assert unpack_header(packet[:24]) == (A_WRTE, 1, 2, 2, 256, A_WRTE ^ 0xFFFFFFFF)
    magic = f"{A_WRTE ^ 0xFFFFFFFF:08x}"
    with pytest.raises(ProtocolError, match=f"bad magic 0x00000000 for command WRTE; expected 0x{magic}"):
        unpack_header(packet[:20] + bytes(4))
    with pytest.raises(ValueError, match="arg0 must fit in 32 unsigned bits, got -1"):
        pack_message(A_OKAY, -1, 0, version=A_VERSION_MIN)
    left, right = socket.socketpair()
    with left, right:
        right.sendall(packet[:16] + struct.pack("<I", 7) + packet[20:] + packet)
        with pytest.raises(ProtocolError, match="WRTE payload checksum mismatch: the header says 7, the 2 payload "
                                                "bytes sum to 256"):
            read_message(left, version=A_VERSION_MIN)
        assert read_message(left, version=A_VERSION_MIN, max_payload=2) == Message(A_WRTE, 1, 2, b"\x01\xff")
        right.sendall(packet)
        with pytest.raises(ProtocolError, match="WRTE payload of 2 bytes exceeds the limit of 1 bytes"):
            read_message(left, version=A_VERSION_MIN, max_payload=1)
        right.close()  # the unread 2-byte payload is all that is left
        with pytest.raises(ProtocolError, match="the connection closed after 2 of 24 bytes of a message header"):
            read_message(left, version=A_VERSION_MIN)
    left, right = socket.socketpair()
    with left, right:
        right.close()
        with pytest.raises(ConnectionClosed):
            read_message(left, version=A_VERSION_MIN)


@pytest.mark.parametrize("size", [0, 1, 511, 512, 65536, 300_001])
def test_checksum_is_the_byte_sum_modulo_2_32_at_every_size(size):
    payload = bytes([255]) * size if size % 2 else os.urandom(size)
    assert checksum(payload) == sum(payload) % 2**32
    assert checksum(bytearray(payload)) == checksum(memoryview(payload)) == sum(payload) % 2**32
    assert checksum(bytes([255]) * 16_843_010) == (255 * 16_843_010) % 2**32  # wraps past 2**32


def test_a_new_key_is_allowed_and_stored_then_its_signature_is_enough(phone, key_paths):
    first = connect(phone, key_paths[0])
    assert first.shell("echo hi") == "hi\n"
    first.close()
    with open(key_paths[0] + ".pub") as stream:
        assert phone.authorized_keys_path.read_text() == stream.read() + "\n"
    phone.accept_new_keys = False  # from now on only a signature by a stored key gets in
    second = connect(phone, key_paths[0])
    assert second.shell("getprop ro.serialno") == f"{phone.serial}\n" and phone.serial == f"EMU{phone.port}"
    second.close()
    start = time.monotonic()
    with pytest.raises(TcpTimeoutException):
        connect(phone, key_paths[1], auth_timeout_s=0.3)  # the prompt for an unknown key is never answered
    assert time.monotonic() - start < 3.0
    assert len(phone.authorized_keys_path.read_text().splitlines()) == 1


def test_reject_auth_refuses_even_stored_keys(phone, key_paths):
    connect(phone, key_paths[0]).close()
    phone.faults.reject_auth = True
    for key_path in key_paths:
        with pytest.raises(TcpTimeoutException):
            connect(phone, key_path, auth_timeout_s=0.3)
    phone.faults.reject_auth = False
    assert connect(phone, key_paths[0]).shell("true") == ""


def test_handshake_streams_and_flow_control_on_the_wire(phone, key_paths):
    host = RawHost(phone.port)
    assert host.handshake(key_paths[0], maxdata=4096) == Message(A_CNXN, A_VERSION_SKIP_CHECKSUM, 4096, BANNER)
    blob = bytes(range(256)) * 40  # 10240 bytes: three WRTE packets at maxdata 4096
    (phone.root / "data/local/tmp/blob").write_bytes(blob)

    host.send(A_OPEN, 1, 0, b"shell:cat /data/local/tmp/blob\0")
    okay = host.recv()
    assert okay.command == A_OKAY and okay.arg1 == 1
    first_id = okay.arg0
    assert host.recv() == Message(A_WRTE, first_id, 1, blob[:4096])
    # stream 1 now waits for our OKAY; stream 2 runs meanwhile
    host.send(A_OPEN, 2, 0, b"shell:echo second\0")
    okay = host.recv()
    second_id = okay.arg0
    assert okay == Message(A_OKAY, second_id, 2) and second_id != first_id
    assert host.recv() == Message(A_WRTE, second_id, 2, b"second\n")
    assert host.recv() == Message(A_CLSE, second_id, 2)
    host.send(A_CLSE, 2, second_id)  # already closed on the device: ignored
    assert host.nothing_pending()
    received = blob[:4096]
    while True:
        host.send(A_OKAY, 1, first_id)
        message = host.recv()
        if message.command == A_CLSE:
            assert message == Message(A_CLSE, first_id, 1)
            break
        assert message.command == A_WRTE and len(message.payload) <= 4096
        received += message.payload
    assert received == blob

    host.send(A_OPEN, 3, 0, b"sync:\0")
    sync_id = host.recv().arg0
    host.send(A_WRTE, 3, sync_id, b"STAT" + struct.pack("<I", 6))
    assert host.recv() == Message(A_OKAY, sync_id, 3)
    host.send(A_WRTE, 3, sync_id, b"/proc/")  # a request split across two packets
    info = os.stat(phone.root / "proc")
    stat_reply = b"STAT" + struct.pack("<3I", info.st_mode, info.st_size, int(info.st_mtime))
    assert [host.recv(), host.recv()] == [Message(A_OKAY, sync_id, 3), Message(A_WRTE, sync_id, 3, stat_reply)]
    host.send(A_OKAY, 3, sync_id)
    host.send(A_CLSE, 3, sync_id)
    assert host.recv() == Message(A_CLSE, sync_id, 3)
    host.send(A_OPEN, 5, 0, b"sync:\0")
    quit_id = host.recv().arg0
    host.send(A_WRTE, 5, quit_id, b"QUIT" + bytes(4))
    assert host.recv() == Message(A_OKAY, quit_id, 5)
    assert host.recv() == Message(A_CLSE, quit_id, 5)  # QUIT ends the service and closes the stream

    host.send(A_OPEN, 4, 0, b"reboot:\0")
    assert host.recv() == Message(A_CLSE, 0, 4)
    host.close()


def _v2_session(host, local_id, service, stdin=None):
    """Open ``service``, send ``stdin`` (then close it) as shell v2 packets, and return the v2 packets the phone
    sent before closing the stream, as ``(id, data)``."""
    host.send(A_OPEN, local_id, 0, service.encode() + b"\0")
    okay = host.recv()
    assert (okay.command, okay.arg1) == (A_OKAY, local_id)
    remote, data = okay.arg0, b""
    if stdin is not None:
        host.send(A_WRTE, local_id, remote, struct.pack("<BI", 0, len(stdin)) + stdin + struct.pack("<BI", 4, 0))
    while (message := host.recv()).command != A_CLSE:
        if message.command == A_WRTE:
            data += message.payload
            host.send(A_OKAY, local_id, remote)
    packets = []
    while data:
        packet_id, length = struct.unpack("<BI", data[:5])
        packets.append((packet_id, data[5:5 + length]))
        data = data[5 + length:]
    return packets


def test_shell_v2_keeps_stdout_and_stderr_apart_takes_stdin_and_ends_with_the_exit_status(phone, key_paths):
    host = RawHost(phone.port)
    host.handshake(key_paths[0])
    assert _v2_session(host, 1, "shell,v2,raw:false") == [(3, b"\x01")]
    assert _v2_session(host, 2, "shell,v2,raw:exit 300") == [(3, bytes([300 & 0xFF]))]
    assert _v2_session(host, 3, "shell,v2,raw:echo out; cat /nope; echo $?") == [
        (1, b"out\n"), (2, b"cat: /nope: No such file or directory\n"), (1, b"1\n"), (3, b"\x00")]
    assert _v2_session(host, 4, "shell,v2,raw:cat | wc -c", stdin=b"four") == [(1, b"4\n"), (3, b"\x00")]
    assert _v2_session(host, 5, "shell,v2,TERM=xterm-256color,pty:echo a; cat /nope") == [
        (1, b"a\r\n"), (1, b"cat: /nope: No such file or directory\r\n"), (3, b"\x01")]
    assert _v2_session(host, 6, "shell,v2,TERM=xterm-256color,pty:") == [
        (1, b"the emulated phone has no interactive shell: run one command line at a time, as in: adb shell "
            b"'ls -l /data/local/tmp'\r\n"), (3, b"\x01")]
    assert phone.command_log[-1] == "echo a; cat /nope"
    host.close()


def test_checksums_are_verified_below_skip_checksum_and_ignored_from_it(phone, key_paths):
    host = RawHost(phone.port)
    host.send(A_CNXN, A_VERSION_MIN, 4096, b"host::\0", crc=12345)
    assert host.closed_by_peer()

    host = RawHost(phone.port)
    host.handshake(key_paths[0])
    host.send(A_OPEN, 1, 0, b"shell:echo hi\0", crc=1)
    assert host.closed_by_peer()

    host = RawHost(phone.port)
    host.sock.sendall(struct.pack(HEADER_FORMAT, A_CNXN, A_VERSION_MIN, 4096, 0, 0, 0))
    assert host.closed_by_peer()  # bad magic

    host = RawHost(phone.port, version=A_VERSION_SKIP_CHECKSUM)
    host.send(A_CNXN, A_VERSION_SKIP_CHECKSUM, 4096, b"host::\0", crc=sum(b"host::\0"))
    header = host.sock.recv(24, socket.MSG_PEEK | socket.MSG_WAITALL)
    assert struct.unpack(HEADER_FORMAT, header)[4] == 0  # the device stopped filling in checksums
    host.recv()
    with open(key_paths[0] + ".pub", "rb") as stream:
        host.send(A_AUTH, AUTH_RSAPUBLICKEY, 0, stream.read() + b"\0", crc=999)
    assert host.recv() == Message(A_CNXN, A_VERSION_SKIP_CHECKSUM, 4096, BANNER)
    host.close()


def test_shell_reports_what_a_pixel_4_reports(phone, device):
    port = phone.port
    assert device.shell("getprop") == (
        "[ro.board.platform]: [msmnile]\n"
        f"[ro.boot.serialno]: [EMU{port}]\n"
        "[ro.build.fingerprint]: [google/flame/flame:13/TP1A.221005.002/3300001:user/release-keys]\n"
        "[ro.build.id]: [TP1A.221005.002]\n"
        "[ro.build.type]: [user]\n"
        "[ro.build.version.release]: [13]\n"
        "[ro.build.version.sdk]: [33]\n"
        "[ro.debuggable]: [0]\n"
        "[ro.hardware]: [flame]\n"
        "[ro.product.brand]: [google]\n"
        "[ro.product.cpu.abi]: [arm64-v8a]\n"
        "[ro.product.cpu.abilist]: [arm64-v8a,armeabi-v7a,armeabi]\n"
        "[ro.product.device]: [flame]\n"
        "[ro.product.manufacturer]: [Google]\n"
        "[ro.product.model]: [Pixel 4]\n"
        "[ro.product.name]: [flame]\n"
        "[ro.secure]: [1]\n"
        f"[ro.serialno]: [EMU{port}]\n"
        "[ro.soc.manufacturer]: [Qualcomm]\n"
        "[ro.soc.model]: [SM8150]\n"
        "[sys.boot_completed]: [1]\n")
    cpu = "/sys/devices/system/cpu"
    assert device.shell(f"cat {cpu}/possible {cpu}/cpu0/cpufreq/cpuinfo_max_freq {cpu}/cpu4/cpufreq/cpuinfo_max_freq "
                        f"{cpu}/cpu7/cpufreq/cpuinfo_max_freq {cpu}/cpu7/cpufreq/scaling_governor") == (
        "0-7\n1785600\n2419200\n2841600\nschedutil\n")
    assert device.shell("ls /sys/class/thermal") == "".join(f"thermal_zone{i}\n" for i in range(6))
    assert device.shell("cat /sys/class/thermal/thermal_zone5/type /sys/class/thermal/thermal_zone5/temp") == (
        "skin-therm\n30000\n")
    cpuinfo = device.shell("cat /proc/cpuinfo")
    assert cpuinfo.count("processor\t: ") == 8 and cpuinfo.endswith("\nHardware\t: Qualcomm Technologies, Inc SM8150\n")
    assert "processor\t: 7\nBogoMIPS\t: 38.40\n" in cpuinfo and "CPU part\t: 0x804\nCPU revision\t: 14\n" in cpuinfo
    assert device.shell("uname -m; id") == (
        "aarch64\nuid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),1015(sdcard_rw),"
        "1028(sdcard_r),1078(ext_data_rw),1079(ext_obb_rw),3001(net_bt_admin),3002(net_bt),3003(inet),"
        "3006(net_bw_stats),3009(readproc),3011(uhid),3012(readtracefs) context=u:r:shell:s0\n")
    assert device.shell("dumpsys battery") == (
        "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n  Wireless powered: false\n"
        "  Max charging current: 500000\n  Max charging voltage: 5000000\n  Charge counter: 2380000\n"
        "  status: 2\n  health: 2\n  present: true\n  level: 85\n  scale: 100\n  voltage: 4187\n"
        "  temperature: 285\n  technology: Li-ion\n")
    sensors = ("\tTemperature{mValue=36.0, mType=0, mName=cpu0, mStatus=0}\n"
               "\tTemperature{mValue=37.0, mType=0, mName=cpu4, mStatus=0}\n"
               "\tTemperature{mValue=37.5, mType=0, mName=cpu7, mStatus=0}\n"
               "\tTemperature{mValue=35.0, mType=1, mName=gpu0, mStatus=0}\n"
               "\tTemperature{mValue=28.5, mType=2, mName=battery, mStatus=0}\n"
               "\tTemperature{mValue=30.0, mType=3, mName=skin, mStatus=0}\n")
    listeners = "\tcallbacks: 0\n\tkilled: false\n\tbroadcasts count: -1\n"
    assert device.shell("dumpsys thermalservice") == (
        f"IsStatusOverride: false\nThermalEventListeners:\n{listeners}ThermalStatusListeners:\n{listeners}"
        f"Thermal Status: 0\nCached temperatures:\n{sensors}HAL Ready: true\nHAL connection:\n"
        f"\tThermalHAL 2.0 connected: yes\nCurrent temperatures from HAL:\n{sensors}")
    assert phone.command_log[-2:] == ["dumpsys battery", "dumpsys thermalservice"]


def test_shell_separators_and_status_over_adb(phone, device):
    assert device.shell("false && echo no; echo $?; false || echo yes") == "1\nyes\n"
    assert device.shell(f"ls {TMP}/a;echo injected") == f"ls: {TMP}/a: No such file or directory\ninjected\n"
    assert device.shell(f"ls '{TMP}/a;echo injected'") == f"ls: {TMP}/a;echo injected: No such file or directory\n"
    assert device.shell("cat /proc/cpuinfo | head -1") == "processor\t: 0\n"
    assert device.shell(f"echo $((6*7)) > {TMP}/n && cat < {TMP}/n; ls /nope 2>&1 | wc -l") == "42\n1\n"
    assert device.shell("sleep 1 &").startswith("/system/bin/sh: unsupported syntax: '&' (background jobs) (the "
                                                "emulated shell supports commands joined by ; && || |")
    assert device.shell("cmd power set-fixed-performance-mode-enabled true") == ""
    assert phone.fixed_performance_mode is True


def test_push_stat_list_checksum_and_pull_round_trip(phone, device, tflite_path, tmp_path):
    data = tflite_path.read_bytes()
    device.push(str(tflite_path), f"{TMP}/m.tflite", mtime=1700000000)
    assert device.stat(f"{TMP}/m.tflite") == (0o100770, len(data), 1700000000)
    assert device.stat(f"{TMP}/none") == (0, 0, 0)
    assert [(bytes(f.filename), f.mode, f.size) for f in device.list(TMP)] == [
        (b".", 0o40755, os.stat(phone.root / TMP[1:]).st_size),
        (b"..", 0o40755, os.stat(phone.root / "data/local").st_size), (b"m.tflite", 0o100770, len(data))]
    assert device.shell(f"sha256sum {TMP}/m.tflite; stat -c %s {TMP}/m.tflite") == (
        f"{hashlib.sha256(data).hexdigest()}  {TMP}/m.tflite\n{len(data)}\n")
    assert (phone.root / TMP[1:] / "m.tflite").read_bytes() == data

    big = os.urandom(600_000)  # larger than the 256 KiB payload limit and many sync DATA chunks
    device.push(io.BytesIO(big), f"{TMP}/sub/big.bin", st_mode=0o100644)
    assert device.shell(f"stat -c '%s %a' {TMP}/sub/big.bin") == "600000 644\n"
    pulled = io.BytesIO()
    device.pull(f"{TMP}/sub/big.bin", pulled)
    assert pulled.getvalue() == big
    device.pull(f"{TMP}/m.tflite", str(tmp_path / "back.tflite"))
    assert (tmp_path / "back.tflite").read_bytes() == data


def test_sync_failures_name_the_problem(device):
    with pytest.raises(AdbCommandFailureException, match="^Command failed: No such file or directory$"):
        device.pull(f"{TMP}/none", io.BytesIO())
    with pytest.raises(PushFailedError) as refused:
        device.push(io.BytesIO(b"x"), "/proc/new")
    assert refused.value.args == (bytearray(b"/proc/new: Permission denied"),)
    with pytest.raises(AdbCommandFailureException, match="^Command failed: /../etc/passwd: '..' leaves the root"):
        device.pull("/../etc/passwd", io.BytesIO())
    assert device.stat("/../etc/passwd") == (0, 0, 0)  # STAT has no failure reply: like a missing file
    assert device.list("/no/such/dir") == [] and device.list("/../etc") == []
    assert device.shell("echo still connected") == "still connected\n"


def _install(device, tflite_path):
    device.push(str(tflite_path), f"{TMP}/m.tflite")
    device.push(io.BytesIO(b"\x7fELF"), f"{TMP}/benchmark_model", st_mode=0o100755)


@pytest.mark.parametrize("bm_format", ["recent", "older", "oldest"])
def test_benchmark_model_runs_the_model_and_its_output_parses(bm_format, key_paths, tflite_path):
    with EmulatedPhone("pixel3", bm_format=bm_format) as phone:
        device = connect(phone, key_paths[0])
        _install(device, tflite_path)
        command = f"taskset 80 {TMP}/benchmark_model --graph={TMP}/m.tflite {BENCH_ARGS}"
        text = device.shell(command)
        device.close()
    result = parse_benchmark_output(text, device="emulated-pixel3", settings=SETTINGS)
    assert result.count >= 3 and 0 < result.min_us <= result.mean_us <= result.max_us
    assert result.init_us > 0 and result.first_inference_us > 0 and result.p90_us is None
    assert phone.taskset_log == [(0x80, command[len("taskset 80 "):])]
    prefix = "INFO: " if bm_format == "recent" else ""
    lines = text.splitlines()
    assert lines[0] == f"{prefix}STARTING!" and f"{prefix}Graph: [{TMP}/m.tflite]" in lines
    assert f"{prefix}Loaded model {TMP}/m.tflite" in lines
    summary = {"recent": "INFO: Inference timings in us: Init: ", "older": "Average inference timings in us: Warmup: ",
               "oldest": "Average inference timings in us: Warmup: "}[bm_format]
    assert sum(line.startswith(summary) for line in lines) == 1
    assert (", no stats: " in text) == (bm_format == "oldest")


def test_benchmark_heats_the_phone(key_paths, tflite_path):
    hot = dataclasses.replace(PROFILES["pixel4"], heat_c_per_s=50.0, cool_c_per_s=0.0)
    with EmulatedPhone(hot) as phone:
        device = connect(phone, key_paths[0])
        _install(device, tflite_path)
        before = phone.temperatures()
        device.shell(f"{TMP}/benchmark_model --graph={TMP}/m.tflite {BENCH_ARGS}")
        after = phone.temperatures()
        assert before["skin"] == 30.0 and after["skin"] > 30.0 and after["cpu7"] > after["skin"]
        zone = int(device.shell("cat /sys/class/thermal/thermal_zone5/temp"))
        assert zone == round(phone.temperatures()["skin"] * 1000)
        battery = device.shell("dumpsys battery").split("temperature: ")[1].split("\n")[0]
        assert int(battery) > 285
        device.close()


def test_benchmark_faults(phone, device, tflite_path, monkeypatch):
    _install(device, tflite_path)
    run = f"{TMP}/benchmark_model --graph={TMP}/m.tflite {BENCH_ARGS}"
    phone.faults.garbage_output = True
    garbage = device.shell(f"{run}; echo $?")
    assert garbage.endswith("no timings here\n0\n")
    with pytest.raises(BenchmarkOutputError, match="no 'count=... avg=... std=...' statistics line"):
        parse_benchmark_output(garbage, device="emu", settings=SETTINGS)
    phone.faults.garbage_output = False
    phone.faults.fail_benchmark = True
    failed = device.shell(f"{run}; echo $?")
    assert failed.endswith("INFO: Loaded model /data/local/tmp/m.tflite\nINFO: The input model file size (MB): "
                           f"{tflite_path.stat().st_size / 1e6:.6g}\nERROR: benchmark_model failed: fault injected by "
                           "the emulator (Faults.fail_benchmark)\n1\n")
    with pytest.raises(BenchmarkOutputError, match="the output says: 'ERROR: benchmark_model failed"):
        parse_benchmark_output(failed, device="emu", settings=SETTINGS)
    phone.faults.fail_benchmark = False

    def broken_interpreter(path, settings, seed):
        raise RuntimeError(f"{path}: Node number 3 (CONV_2D) failed to invoke.")

    monkeypatch.setattr(benchmark_tool, "time_model", broken_interpreter)
    assert device.shell(f"{run}; echo $?").endswith(
        f"ERROR: Failed to invoke the interpreter: {TMP}/m.tflite: Node number 3 (CONV_2D) failed to invoke.\n1\n")


def test_runs_are_numbered_and_a_slow_run_reports_slowed_timings(phone, device, tflite_path):
    _install(device, tflite_path)
    run = f"{TMP}/benchmark_model --graph={TMP}/m.tflite {BENCH_ARGS}"
    phone.faults.fail_benchmark = True
    device.shell(run)  # fails before timing anything: not a run
    phone.faults.fail_benchmark = False
    phone.faults.slow_benchmark_runs, phone.faults.slow_benchmark_factor = {2}, 1000.0
    first, second, third = (parse_benchmark_output(device.shell(run), device="emu", settings=SETTINGS)
                            for _ in range(3))
    assert phone.benchmark_runs == 3
    assert second.min_us > 100 * max(first.min_us, third.min_us)  # x1000, far beyond any run-to-run noise
    assert second.init_us > 100 * max(first.init_us, third.init_us)


def test_drop_during_benchmark_resets_the_connection_after_the_warmup_line(phone, device, key_paths, tflite_path):
    _install(device, tflite_path)
    phone.faults.drop_during_benchmark = True
    received = []
    with pytest.raises(ConnectionResetError):
        for chunk in device.streaming_shell(f"{TMP}/benchmark_model --graph={TMP}/m.tflite {BENCH_ARGS}"):
            received.append(chunk)
    text = "".join(received)
    # the warm-up statistics line (whichever form tflite::Stat prints), its blank line, then nothing
    assert re.search(r"\n(?:INFO: )?count=\d+[^\n]*\n\n$", text) and text.count("count=") == 1
    assert "Running benchmark for at least 1 iterations" in text and "Inference timings" not in text
    phone.faults.drop_during_benchmark = False
    again = connect(phone, key_paths[0])
    assert again.shell("echo back") == "back\n"
    again.close()


def test_slow_responses_delay_every_packet(phone, device):
    phone.faults.slow_response_s = 0.15
    start = time.monotonic()
    assert device.shell("echo slow") == "slow\n"
    assert time.monotonic() - start >= 0.45  # OKAY, WRTE and CLSE each wait
    phone.faults.slow_response_s = 0.0


def test_temperature_and_battery_overrides(phone, device):
    phone.faults.temperature_c = 47.0
    phone.faults.battery_level = 12
    thermal = device.shell("dumpsys thermalservice")
    assert "Thermal Status: 4\n" in thermal
    assert "\tTemperature{mValue=47.0, mType=3, mName=skin, mStatus=4}\n" in thermal
    assert "\tTemperature{mValue=47.0, mType=0, mName=cpu0, mStatus=0}\n" in thermal
    assert device.shell("cat /sys/class/thermal/thermal_zone0/temp") == "47000\n"
    battery = device.shell("dumpsys battery")
    assert "  level: 12\n" in battery and "  temperature: 470\n" in battery


def test_state_dir_keeps_files_and_keys_across_restarts(tmp_path, key_paths):
    with EmulatedPhone("pixel6", state_dir=tmp_path / "phone") as phone:
        device = connect(phone, key_paths[0])
        device.push(io.BytesIO(b"kept"), f"{TMP}/kept.txt")
        device.close()
    with EmulatedPhone("pixel6", state_dir=tmp_path / "phone", accept_new_keys=False) as phone:
        device = connect(phone, key_paths[0])
        assert device.shell(f"cat {TMP}/kept.txt; getprop ro.product.model") == "keptPixel 6\n"
        device.close()
    assert (tmp_path / "phone" / "adb_keys").exists()
    temporary = EmulatedPhone().start()
    state_dir = temporary.root.parent
    temporary.stop()
    assert not state_dir.exists()


def test_constructor_arguments_are_validated():
    with pytest.raises(ValueError, match="bm_format must be one of recent, older, oldest, got 'new'"):
        EmulatedPhone(bm_format="new")
    with pytest.raises(ValueError, match="unknown phone profile 'pixel9'; expected one of pixel3, pixel4, pixel6"):
        EmulatedPhone("pixel9")
    with pytest.raises(ValueError, match="port must be an int 0..65535, got 70000"):
        EmulatedPhone(port=70000)
    with pytest.raises(ValueError, match="faults must be a Faults instance or None, got 'none'"):
        EmulatedPhone(faults="none")
    with pytest.raises(RuntimeError, match="the EmulatedPhone is not started"):
        EmulatedPhone().serial
    faults = Faults(battery_level=5)
    with EmulatedPhone(faults=faults) as phone:
        assert phone.faults is faults and phone.temperatures()["skin"] == 30.0
        assert repr(phone) == f"EmulatedPhone('pixel4', 127.0.0.1:{phone.port})"


@pytest.mark.skipif(shutil.which("adb") is None, reason="the adb binary is not installed")
def test_the_adb_binary_talks_to_the_emulator(tmp_path, tflite_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server_port = probe.getsockname()[1]
    env = dict(os.environ, HOME=str(tmp_path), ANDROID_ADB_SERVER_PORT=str(server_port))

    def adb(*args):
        return subprocess.run(["adb", *args], env=env, capture_output=True, text=True, timeout=30)

    with EmulatedPhone("pixel4") as phone:
        try:
            assert adb("start-server").returncode == 0
            adb("connect", phone.address)
            deadline = time.monotonic() + 10
            while f"{phone.address}\tdevice" not in adb("devices").stdout and time.monotonic() < deadline:
                time.sleep(0.1)
            shell = adb("-s", phone.address, "shell", "getprop ro.product.model; echo $?")
            assert (shell.returncode, shell.stdout) == (0, "Pixel 4\n0\n")
            assert adb("-s", phone.address, "shell", "false").returncode == 1  # shell v2 carries the status
            piped = adb("-s", phone.address, "shell", "dumpsys battery | grep level; ls /nope; exit 3")
            assert (piped.returncode, piped.stdout, piped.stderr) == (3, "  level: 85\n",
                                                                      "ls: /nope: No such file or directory\n")
            assert adb("-s", phone.address, "push", str(tflite_path), f"{TMP}/m.tflite").returncode == 0
            pulled = tmp_path / "pulled.tflite"
            assert adb("-s", phone.address, "pull", f"{TMP}/m.tflite", str(pulled)).returncode == 0
            assert pulled.read_bytes() == tflite_path.read_bytes()
        finally:
            adb("kill-server")
