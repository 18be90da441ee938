"""The text ``dumpsys battery`` and ``dumpsys thermalservice`` print on the emulated phone (Android 13 layout)."""

from __future__ import annotations

from devicefarm.emulator.state import PhoneState
from devicefarm.emulator.thermal import sensor_status, thermal_status

BATTERY_STATUS_CHARGING = 2  # BatteryManager.BATTERY_STATUS_CHARGING
BATTERY_HEALTH_GOOD = 2  # BatteryManager.BATTERY_HEALTH_GOOD


def battery_report(state: PhoneState) -> str:
    """``dumpsys battery``: USB-powered and charging; level, voltage (mV) and temperature (tenths of C)."""
    profile, level = state.profile, state.battery_level()
    lines = [
        "Current Battery Service state:",
        "  AC powered: false",
        "  USB powered: true",
        "  Wireless powered: false",
        "  Max charging current: 500000",
        "  Max charging voltage: 5000000",
        f"  Charge counter: {profile.battery_capacity_mah * level * 10}",
        f"  status: {BATTERY_STATUS_CHARGING}",
        f"  health: {BATTERY_HEALTH_GOOD}",
        "  present: true",
        f"  level: {level}",
        "  scale: 100",
        f"  voltage: {profile.battery_voltage_mv}",
        f"  temperature: {round(state.battery_temperature_c() * 10)}",
        "  technology: Li-ion",
    ]
    return "\n".join(lines) + "\n"


def _celsius(value: float) -> str:
    return str(round(value, 1))


def thermal_report(state: PhoneState) -> str:
    """``dumpsys thermalservice``: the overall status (the highest sensor status, 0..6) and every sensor as
    ``Temperature{mValue=.., mType=.., mName=.., mStatus=..}``, cached and current from the HAL."""
    temperatures = state.temperatures()
    readings = [(sensor, celsius, sensor_status(state.profile, sensor, celsius)) for sensor, celsius in temperatures]
    lines_of_sensors = [f"\tTemperature{{mValue={_celsius(celsius)}, mType={sensor.hal_type}, "
                        f"mName={sensor.hal_name}, mStatus={status}}}" for sensor, celsius, status in readings]
    listeners = ["\tcallbacks: 0", "\tkilled: false", "\tbroadcasts count: -1"]
    lines = [
        "IsStatusOverride: false",
        "ThermalEventListeners:", *listeners,
        "ThermalStatusListeners:", *listeners,
        f"Thermal Status: {thermal_status(state.profile, temperatures)}",
        "Cached temperatures:", *lines_of_sensors,
        "HAL Ready: true",
        "HAL connection:",
        "\tThermalHAL 2.0 connected: yes",
        "Current temperatures from HAL:", *lines_of_sensors,
    ]
    return "\n".join(lines) + "\n"
