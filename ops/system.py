"""Readings of the host through psutil: CPU, memory, load, temperatures and CPU frequency. No database here."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime

import psutil
from django.utils import timezone

# With no sensor's own high mark, a CPU this hot is throttling on most hardware.
HOT_CELSIUS = 90.0
# Below this share of its maximum frequency while hot, a CPU is held back rather than idling.
SLOW_FREQUENCY_RATIO = 0.8
# psutil's CPU percentage covers the time since the previous call in this process; a first call waits this long.
FIRST_CPU_WINDOW_SECONDS = 0.1
CPU_READ_AT: list[float] = []  # when this process last asked psutil for the CPU percentage


@dataclass(frozen=True)
class SystemReading:
    cpu_percent: float
    memory_percent: float
    memory_used_bytes: int
    load_1m: float | None
    max_temperature_c: float | None
    created_at: datetime = field(default_factory=timezone.now)


def cpu_percent() -> float:
    """Average CPU use since this process last asked (a short measured window the first time)."""
    first = not CPU_READ_AT
    value = psutil.cpu_percent(interval=FIRST_CPU_WINDOW_SECONDS if first else None)
    CPU_READ_AT[:] = [time.monotonic()]
    return float(value)


def temperatures() -> dict[str, list]:
    """psutil's sensors by chip; empty where the OS exposes none (or psutil has no sensor support there)."""
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return {}
    try:
        return read() or {}
    except (OSError, RuntimeError):
        return {}


def hottest(sensors: dict[str, list]) -> float | None:
    values = [entry.current for entries in sensors.values() for entry in entries if entry.current is not None]
    return max(values) if values else None


def load_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def read_system() -> SystemReading:
    memory = psutil.virtual_memory()
    return SystemReading(
        cpu_percent=cpu_percent(),
        memory_percent=float(memory.percent),
        memory_used_bytes=int(memory.total - memory.available),
        load_1m=load_1m(),
        max_temperature_c=hottest(temperatures()),
    )


def cpu_frequency() -> dict | None:
    """Current, minimum and maximum MHz; None where the OS reports no frequency."""
    try:
        frequency = psutil.cpu_freq()
    except (AttributeError, OSError, NotImplementedError):
        return None
    if frequency is None:
        return None
    maximum = frequency.max or None  # psutil says 0.0 where the OS does not know the maximum
    return {
        "current_mhz": round(frequency.current, 1),
        "min_mhz": round(frequency.min, 1) if frequency.min else None,
        "max_mhz": round(maximum, 1) if maximum else None,
        "ratio_of_max": round(frequency.current / maximum, 3) if maximum else None,
    }


def thermal() -> dict:
    """Sensors and CPU frequency against its maximum, and whether they point at thermal throttling."""
    return thermal_report(temperatures(), cpu_frequency())


def thermal_report(sensors: dict[str, list], frequency: dict | None) -> dict:
    """The judgement, apart from the reading: psutil's sensors by chip and `cpu_frequency()`'s shape."""
    rows = [
        {"chip": chip, "label": entry.label or chip, "current_c": entry.current, "high_c": entry.high,
         "critical_c": entry.critical}
        for chip, entries in sensors.items() for entry in entries
    ]
    max_temperature = hottest(sensors)
    knows_max_frequency = bool(frequency and frequency["max_mhz"])
    if not rows and not knows_max_frequency:
        return {
            "available": False, "throttling": "not available",
            "message": "Not available: this system exposes no temperature sensors and no maximum CPU frequency.",
            "sensors": [], "max_temperature_c": None, "cpu_frequency": frequency, "reasons": [],
        }
    reasons = []
    for row in rows:
        if row["critical_c"] and row["current_c"] >= row["critical_c"]:
            reasons.append(f"{row['label']} is at {row['current_c']:.0f} °C, at or above its critical "
                           f"{row['critical_c']:.0f} °C")
        elif row["high_c"] and row["current_c"] >= row["high_c"]:
            reasons.append(f"{row['label']} is at {row['current_c']:.0f} °C, at or above its high "
                           f"{row['high_c']:.0f} °C")
        elif not row["high_c"] and row["current_c"] >= HOT_CELSIUS:
            reasons.append(f"{row['label']} is at {row['current_c']:.0f} °C")
    if reasons and knows_max_frequency and frequency["ratio_of_max"] < SLOW_FREQUENCY_RATIO:
        reasons.append(f"the CPU runs at {frequency['ratio_of_max']:.0%} of its maximum frequency while hot")
    if reasons:
        throttling, message = "likely", "Throttling likely: " + "; ".join(reasons) + "."
    elif rows:
        throttling, message = "not likely", "Throttling not likely: every sensor is below its high mark."
    else:
        throttling = "unknown"
        message = "No temperature sensors: the CPU frequency alone cannot tell throttling from idling."
    return {
        "available": True, "throttling": throttling, "message": message, "sensors": rows,
        "max_temperature_c": max_temperature, "cpu_frequency": frequency, "reasons": reasons,
    }
