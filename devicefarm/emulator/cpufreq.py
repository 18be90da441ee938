"""The emulated phone's cpufreq policy: what ``scaling_min_freq``, ``scaling_max_freq`` and ``scaling_cur_freq``
of a core read (kHz).

In Android's fixed-performance mode the power HAL pins each cluster to its ``fixed_freq_khz`` (minimum =
maximum = current). Otherwise the policy spans the cluster's range, its maximum capped at ``fixed_freq_khz``
while the phone throttles (thermal status severe or worse), and the governor (schedutil) runs a core at the
top of its range while a benchmark runs and lets it drop to the bottom when idle.
"""

from __future__ import annotations

from devicefarm.emulator.profiles import CpuCluster

THROTTLING_STATUS = 3  # Android's THERMAL_STATUS_SEVERE: the thermal HAL caps the CPUs from here on


def scaling_freqs_khz(cluster: CpuCluster, *, fixed_performance: bool, thermal_status: int,
                      busy: bool) -> dict[str, int]:
    """``{"scaling_min_freq", "scaling_max_freq", "scaling_cur_freq"}`` of a core of ``cluster``."""
    if fixed_performance:
        low = high = cluster.fixed_freq_khz
    else:
        low, high = cluster.min_freq_khz, cluster.max_freq_khz
        if thermal_status >= THROTTLING_STATUS:
            high = cluster.fixed_freq_khz
    return {"scaling_min_freq": low, "scaling_max_freq": high, "scaling_cur_freq": high if busy else low}
