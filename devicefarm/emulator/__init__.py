"""A phone you can run here: an ADB daemon on loopback TCP emulating the part of a Pixel that akd-tf uses.

It speaks the ADB wire protocol (AOSP ``protocol.txt``, ``SYNC.TXT``) with public-key authentication, runs
a small ``sh`` (``getprop``, ``cat``, ``dumpsys``, ``taskset``, ...) on a sandboxed file tree with real
``/sys`` and ``/proc`` files, and its ``benchmark_model`` really runs the pushed ``.tflite`` with the host
interpreter. See :class:`EmulatedPhone`, :class:`Faults` and :data:`PROFILES`.
"""

from devicefarm.emulator.faults import Faults
from devicefarm.emulator.profiles import PROFILES, PhoneProfile
from devicefarm.emulator.server import EmulatedPhone

__all__ = ["EmulatedPhone", "Faults", "PROFILES", "PhoneProfile"]
