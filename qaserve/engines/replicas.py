"""`ENGINE_REPLICAS=auto`: how many vLLM engines share the GPU when the user has not said.

A small model leaves the GPU waiting on each engine's CPU-side scheduling, so two engines on one
NVIDIA GPU finish a grader batch sooner with the same greedy answers (H200 figures in
bench/README.md). Two copies of the weights must fit, and each engine needs a CPU core of its
own; anything else (a CPU, another accelerator, tensor/data parallelism) keeps one engine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qaserve.settings import Settings

log = logging.getLogger(__name__)

AUTO_REPLICAS = 2  # the H200 runs of bench/README.md: best or near best at 358 and 2,048 items
WEIGHTS_SHARE = 8  # weights may take at most 1/8 of the memory share, so each copy keeps room
MIN_CPUS = 4  # the API process and each engine process get a core
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@dataclass(frozen=True)
class Machine:
    """What `auto` decides on: the GPU vLLM will use (None: not an NVIDIA GPU) and the CPUs."""

    gpu_name: str | None
    gpu_bytes: int
    cpus: int


def auto_replicas(settings: Settings, machine: Machine, weights_bytes: int) -> tuple[int, str]:
    """The replica count `auto` stands for, and why (said in the log and in /info)."""
    if settings.tensor_parallel_size > 1 or settings.data_parallel_size > 1:
        return 1, "tensor or data parallelism is set"
    if not machine.gpu_name or "NVIDIA" not in machine.gpu_name.upper():
        return 1, "not an NVIDIA GPU (measured there only)"
    if machine.cpus < MIN_CPUS:
        return 1, f"{machine.cpus} CPU cores (< {MIN_CPUS})"
    share = machine.gpu_bytes * settings.gpu_memory_utilization
    if weights_bytes * WEIGHTS_SHARE > share:
        return 1, (
            f"weights {weights_bytes / 2**30:.1f} GiB > 1/{WEIGHTS_SHARE} of the "
            f"{share / 2**30:.0f} GiB memory share"
        )
    return AUTO_REPLICAS, (
        f"{machine.gpu_name}, weights {weights_bytes / 2**30:.1f} GiB, {machine.cpus} CPU cores"
    )


def engine_replicas(settings: Settings, model_dir: Path) -> tuple[int, str]:
    """ENGINE_REPLICAS as set, or what `auto` means on this machine for this model."""
    if isinstance(settings.engine_replicas, int):
        return settings.engine_replicas, "set"
    if not model_dir.is_dir():
        return 1, "auto: the model is not a local folder (its size is unknown)"
    count, reason = auto_replicas(settings, this_machine(), weights_size(model_dir))
    log.info("ENGINE_REPLICAS=auto: %d engine(s): %s", count, reason)
    return count, f"auto: {reason}"


def weights_size(model_dir: Path) -> int:
    return sum(
        f.stat().st_size
        for f in model_dir.iterdir()
        if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES)
    )


def this_machine() -> Machine:
    """Asks vLLM's platform (NVML on NVIDIA), never torch.cuda: initialising CUDA in this
    process would break vLLM's forked engine processes."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        from vllm.platforms import current_platform

        if not current_platform.is_cuda():
            return Machine(None, 0, cpus or 1)
        name = str(current_platform.get_device_name(0))
        return Machine(name, int(current_platform.get_device_total_memory(0)), cpus or 1)
    except Exception as exc:  # no answer means one engine, never a failed start
        log.info("ENGINE_REPLICAS=auto: could not read the GPU (%s)", exc)
        return Machine(None, 0, cpus or 1)
