"""Phone profiles as data: what an emulated phone reports about itself (properties, CPUs, sensors, battery,
power modes).

A :class:`PhoneProfile` is plain data; :data:`PROFILES` holds the built-in ones by name. Change one with
``dataclasses.replace`` (for example a faster ``heat_c_per_s`` in a test).
"""

from __future__ import annotations

from dataclasses import dataclass

# thermal HAL sensor types (android.os.Temperature.TYPE_*)
TYPE_CPU, TYPE_GPU, TYPE_BATTERY, TYPE_SKIN, TYPE_USB_PORT = 0, 1, 2, 3, 4
TYPE_NPU = 9


# the files of /sys/devices/system/cpu/cpuN/cpufreq/ an emulated phone has (unless its profile leaves some out)
CPUFREQ_FILES = ("cpuinfo_max_freq", "cpuinfo_min_freq", "related_cpus", "scaling_cur_freq", "scaling_governor",
                 "scaling_max_freq", "scaling_min_freq")


@dataclass(frozen=True)
class CpuCluster:
    """Cores sharing one frequency domain, and the ``/proc/cpuinfo`` identity of their cores.

    ``fixed_freq_khz`` is the frequency the cluster holds in Android's fixed-performance mode, and its cap
    while the phone throttles (see :mod:`devicefarm.emulator.cpufreq`).
    """

    cores: tuple[int, ...]
    max_freq_khz: int
    min_freq_khz: int
    implementer: int
    variant: int
    part: int
    revision: int
    fixed_freq_khz: int

    def __post_init__(self) -> None:
        if not 0 < self.min_freq_khz <= self.fixed_freq_khz <= self.max_freq_khz:
            raise ValueError(f"cluster {self.cores}: expected 0 < min_freq_khz <= fixed_freq_khz <= max_freq_khz, "
                             f"got {self.min_freq_khz}, {self.fixed_freq_khz}, {self.max_freq_khz}")


@dataclass(frozen=True)
class ThermalSensor:
    """One thermal zone: its sysfs ``type``, its thermal-HAL name and type, the idle temperature, and
    ``heat_share``: how much of the phone's heating (1.0 = all of it) this sensor sees."""

    zone_type: str
    hal_name: str
    hal_type: int
    ambient_c: float
    heat_share: float


@dataclass(frozen=True)
class PhoneProfile:
    name: str
    model: str
    manufacturer: str
    brand: str
    product_name: str
    device: str  # codename, ro.product.device
    board_platform: str
    soc_manufacturer: str
    soc_model: str
    hardware_name: str  # the "Hardware" line of /proc/cpuinfo
    android_release: str
    sdk: int
    build_id: str
    abi: str
    abi_list: tuple[str, ...]
    clusters: tuple[CpuCluster, ...]
    governor: str
    sensors: tuple[ThermalSensor, ...]
    battery_level: int  # percent
    battery_capacity_mah: int
    battery_voltage_mv: int
    battery_ambient_c: float
    battery_heat_share: float
    heat_c_per_s: float  # heating rate while benchmark_model runs
    cool_c_per_s: float  # cooling rate toward ambient while idle
    max_rise_c: float  # heating stops this far above ambient
    # skin temperature at which each thermal status from 1 (light) to 6 (shutdown) begins (Pixel thermal HAL)
    skin_thresholds_c: tuple[float, ...] = (39.0, 43.0, 45.0, 46.5, 52.0, 55.0)
    # whether the power HAL offers fixed-performance mode (`cmd power set-fixed-performance-mode-enabled`)
    fixed_performance_mode: bool = True
    # cpufreq files (names from CPUFREQ_FILES) this phone lacks, as some kernels and vendors leave them out
    missing_cpufreq_files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        cores = sorted(core for cluster in self.clusters for core in cluster.cores)
        if cores != list(range(len(cores))) or not cores:
            raise ValueError(f"profile {self.name!r}: cluster cores must number 0..N-1 once each, got {cores}")
        for name in ("heat_c_per_s", "cool_c_per_s", "max_rise_c"):
            if getattr(self, name) < 0:
                raise ValueError(f"profile {self.name!r}: {name} must be >= 0, got {getattr(self, name)!r}")
        if len(self.skin_thresholds_c) != 6 or list(self.skin_thresholds_c) != sorted(self.skin_thresholds_c):
            raise ValueError(f"profile {self.name!r}: skin_thresholds_c must be 6 ascending temperatures, "
                             f"got {self.skin_thresholds_c!r}")
        if not 0 <= self.battery_level <= 100:
            raise ValueError(f"profile {self.name!r}: battery_level must be 0..100, got {self.battery_level!r}")
        unknown = sorted(set(self.missing_cpufreq_files) - set(CPUFREQ_FILES))
        if unknown:
            raise ValueError(f"profile {self.name!r}: unknown cpufreq file(s) {', '.join(unknown)} in "
                             f"missing_cpufreq_files; expected some of {', '.join(CPUFREQ_FILES)}")

    @property
    def num_cpus(self) -> int:
        return sum(len(cluster.cores) for cluster in self.clusters)

    @property
    def fingerprint(self) -> str:
        return (f"{self.brand}/{self.product_name}/{self.device}:{self.android_release}/{self.build_id}/"
                f"{self.sdk}00001:user/release-keys")

    def properties(self, serial: str) -> dict[str, str]:
        """The system properties ``getprop`` lists, for a phone with serial number ``serial``."""
        return {
            "ro.board.platform": self.board_platform,
            "ro.boot.serialno": serial,
            "ro.build.fingerprint": self.fingerprint,
            "ro.build.id": self.build_id,
            "ro.build.type": "user",
            "ro.build.version.release": self.android_release,
            "ro.build.version.sdk": str(self.sdk),
            "ro.debuggable": "0",
            "ro.hardware": self.device,
            "ro.product.brand": self.brand,
            "ro.product.cpu.abi": self.abi,
            "ro.product.cpu.abilist": ",".join(self.abi_list),
            "ro.product.device": self.device,
            "ro.product.manufacturer": self.manufacturer,
            "ro.product.model": self.model,
            "ro.product.name": self.product_name,
            "ro.secure": "1",
            "ro.serialno": serial,
            "ro.soc.manufacturer": self.soc_manufacturer,
            "ro.soc.model": self.soc_model,
            "sys.boot_completed": "1",
        }


_ABIS = ("arm64-v8a", "armeabi-v7a", "armeabi")

PIXEL3 = PhoneProfile(
    name="pixel3", model="Pixel 3", manufacturer="Google", brand="google", product_name="blueline",
    device="blueline", board_platform="sdm845", soc_manufacturer="Qualcomm", soc_model="SDM845",
    hardware_name="Qualcomm Technologies, Inc SDM845", android_release="12", sdk=31, build_id="SP1A.210812.016.C2",
    abi="arm64-v8a", abi_list=_ABIS,
    clusters=(CpuCluster((0, 1, 2, 3), 1766400, 300000, 0x51, 0x7, 0x803, 12, 1228800),
              CpuCluster((4, 5, 6, 7), 2803200, 825600, 0x51, 0x6, 0x802, 13, 1996800)),
    governor="schedutil",
    sensors=(ThermalSensor("cpu0-silver-usr", "cpu0", TYPE_CPU, 36.0, 1.3),
             ThermalSensor("cpu4-gold-usr", "cpu4", TYPE_CPU, 37.0, 1.6),
             ThermalSensor("gpu0-usr", "gpu0", TYPE_GPU, 35.0, 0.8),
             ThermalSensor("battery", "battery", TYPE_BATTERY, 28.5, 0.4),
             ThermalSensor("skin-therm", "skin", TYPE_SKIN, 30.5, 0.6)),
    battery_level=85, battery_capacity_mah=2915, battery_voltage_mv=4187, battery_ambient_c=28.5,
    battery_heat_share=0.4,
    heat_c_per_s=0.5, cool_c_per_s=0.1, max_rise_c=25.0,
)

PIXEL4 = PhoneProfile(
    name="pixel4", model="Pixel 4", manufacturer="Google", brand="google", product_name="flame",
    device="flame", board_platform="msmnile", soc_manufacturer="Qualcomm", soc_model="SM8150",
    hardware_name="Qualcomm Technologies, Inc SM8150", android_release="13", sdk=33, build_id="TP1A.221005.002",
    abi="arm64-v8a", abi_list=_ABIS,
    clusters=(CpuCluster((0, 1, 2, 3), 1785600, 300000, 0x51, 0xD, 0x805, 14, 1209600),
              CpuCluster((4, 5, 6), 2419200, 710400, 0x51, 0xD, 0x804, 14, 1612800),
              CpuCluster((7,), 2841600, 825600, 0x51, 0xD, 0x804, 14, 2131200)),
    governor="schedutil",
    sensors=(ThermalSensor("cpu-0-0-usr", "cpu0", TYPE_CPU, 36.0, 1.3),
             ThermalSensor("cpu-1-0-usr", "cpu4", TYPE_CPU, 37.0, 1.5),
             ThermalSensor("cpu-1-3-usr", "cpu7", TYPE_CPU, 37.5, 1.7),
             ThermalSensor("gpuss-0-usr", "gpu0", TYPE_GPU, 35.0, 0.8),
             ThermalSensor("battery", "battery", TYPE_BATTERY, 28.5, 0.4),
             ThermalSensor("skin-therm", "skin", TYPE_SKIN, 30.0, 0.6)),
    battery_level=85, battery_capacity_mah=2800, battery_voltage_mv=4187, battery_ambient_c=28.5,
    battery_heat_share=0.4,
    heat_c_per_s=0.6, cool_c_per_s=0.1, max_rise_c=25.0,
)

PIXEL6 = PhoneProfile(
    name="pixel6", model="Pixel 6", manufacturer="Google", brand="google", product_name="oriole",
    device="oriole", board_platform="gs101", soc_manufacturer="Google", soc_model="Tensor",
    hardware_name="Tensor", android_release="14", sdk=34, build_id="UQ1A.240205.004",
    abi="arm64-v8a", abi_list=_ABIS,
    clusters=(CpuCluster((0, 1, 2, 3), 1803000, 300000, 0x41, 0x2, 0xD05, 0, 1197000),
              CpuCluster((4, 5), 2253000, 400000, 0x41, 0x4, 0xD0B, 0, 1491000),
              CpuCluster((6, 7), 2802000, 500000, 0x41, 0x1, 0xD44, 0, 1826000)),
    governor="schedutil",
    sensors=(ThermalSensor("BIG", "BIG", TYPE_CPU, 38.0, 1.8),
             ThermalSensor("MID", "MID", TYPE_CPU, 37.0, 1.5),
             ThermalSensor("LITTLE", "LITTLE", TYPE_CPU, 36.0, 1.2),
             ThermalSensor("G3D", "G3D", TYPE_GPU, 35.0, 0.8),
             ThermalSensor("TPU", "TPU", TYPE_NPU, 35.0, 0.5),
             ThermalSensor("battery", "battery", TYPE_BATTERY, 29.0, 0.4),
             ThermalSensor("neutral_therm", "VIRTUAL-SKIN", TYPE_SKIN, 31.0, 0.7)),
    battery_level=85, battery_capacity_mah=4614, battery_voltage_mv=4187, battery_ambient_c=29.0,
    battery_heat_share=0.4,
    heat_c_per_s=0.8, cool_c_per_s=0.1, max_rise_c=25.0,
)

PROFILES: dict[str, PhoneProfile] = {profile.name: profile for profile in (PIXEL3, PIXEL4, PIXEL6)}


def get_profile(profile: str | PhoneProfile) -> PhoneProfile:
    """A built-in profile by name, or ``profile`` itself when it already is one."""
    if isinstance(profile, PhoneProfile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown phone profile {profile!r}; expected one of {', '.join(sorted(PROFILES))}")
    return PROFILES[profile]
