"""Memory readings for model management: this process, the host (psutil), GPUs (nvidia-smi), and the budget."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

import psutil
from django.conf import settings

NVIDIA_SMI_TIMEOUT_SECONDS = 2.0
UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3,
         "T": 1024**4, "TB": 1024**4}


def parse_budget(value: str, *, total: int) -> int:
    """'75%' of `total`, or a size such as '8G' or '8589934592'; raises ValueError for anything else."""
    text = str(value).strip().upper().replace("IB", "B")
    percent = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
    if percent:
        return int(total * float(percent.group(1)) / 100)
    size = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?B?)", text)
    if not size:
        raise ValueError(f"not a memory budget: {value!r} (write 75% or 8G)")
    return int(float(size.group(1)) * UNITS[size.group(2)])


def memory_budget() -> int:
    """Bytes all loaded models together may take (MODEL_MEMORY_BUDGET, a share of RAM or a size)."""
    return parse_budget(settings.MODEL_MEMORY_BUDGET, total=psutil.virtual_memory().total)


@dataclass(frozen=True)
class GpuMemory:
    index: int
    name: str
    total_bytes: int
    used_bytes: int
    free_bytes: int


def gpu_memory() -> list[GpuMemory]:
    """Each NVIDIA GPU's memory when `nvidia-smi` is installed and answers; none otherwise."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    query = "--query-gpu=index,name,memory.total,memory.used,memory.free"
    try:
        result = subprocess.run([binary, query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                timeout=NVIDIA_SMI_TIMEOUT_SECONDS, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in result.stdout.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 5:
            continue
        try:
            index, total, used, free = int(parts[0]), int(parts[2]), int(parts[3]), int(parts[4])
        except ValueError:
            continue
        mib = 1024**2  # nvidia-smi reports MiB with nounits
        gpus.append(GpuMemory(index=index, name=parts[1], total_bytes=total * mib, used_bytes=used * mib,
                              free_bytes=free * mib))
    return gpus


def host_memory() -> dict:
    """This worker process's resident memory, the host's RAM and swap."""
    process = psutil.Process()
    ram, swap = psutil.virtual_memory(), psutil.swap_memory()
    return {
        "process": {"pid": process.pid, "rss_bytes": process.memory_info().rss},
        "system": {"total_bytes": ram.total, "available_bytes": ram.available, "used_bytes": ram.total - ram.available,
                   "percent": float(ram.percent)},
        "swap": {"total_bytes": swap.total, "used_bytes": swap.used, "percent": float(swap.percent)},
    }
