"""Every device-specific choice in one place: which device, which autocast dtype, which memory layout.

Measured on the 2-core AVX-512/bf16 CPU (bench/precision.py, classic Keras CIFAR-10 model, batch 256):
bf16 autocast + channels_last trains ~2x faster than fp32 NCHW, so `auto` picks it where the CPU has bf16.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
from dataclasses import dataclass

import torch

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype | None   # autocast dtype, None for plain fp32
    channels_last: bool

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def describe(self) -> str:
        return f"{self.device.type} {self.precision}{' channels_last' if self.channels_last else ''}"


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device '{name}' is not valid; valid: auto, cpu, cuda, cuda:N, mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' asked for, but torch sees no CUDA GPU here; use --device auto or cpu")
    if device.type == "mps" and not _mps_available():
        raise UserError("device 'mps' asked for, but Apple MPS is not available here; use --device auto or cpu")
    return device


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_allocator_tuned = False


def keep_freed_memory() -> None:
    """Stop glibc handing the activations' memory back to the OS after every step. By default each block over
    ~32 MB is its own mmap, unmapped when freed, and the next step faults every page of it in again (4.9
    million page faults in one 90 s cifar10-90 run on the 2-core Xeon). Served from the heap and kept, the
    same step ran 6% faster (bench: 246 -> 232 ms for a batch of 500). Linux with glibc only; elsewhere a no-op.

    And numpy's large arrays (the data set as it is read) in ordinary pages, not transparent huge pages: in a
    VM whose free memory goes back to the host (this project's Firecracker machines), faulting in a huge page
    of it took ~29 ms — 300 MB of np.ones in 4.8 s against 0.11 s in 4 KB pages — and reading CIFAR-10 took
    up to 2 s instead of 0.24. On bare metal the difference is a few milliseconds either way."""
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return
    _allocator_tuned = True
    _numpy_without_huge_pages()
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_MAX, 0)             # large blocks from the heap, not one mmap each
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)  # keep up to 1 GB of freed heap for the next step
    except (OSError, AttributeError):  # musl or another libc: leave its defaults
        pass


def _numpy_without_huge_pages() -> None:
    try:
        import numpy
        multiarray = getattr(numpy, "_core", None) or numpy.core  # numpy 2 / numpy 1
        multiarray.multiarray._set_madvise_hugepage(False)
    except (ImportError, AttributeError):  # a numpy without the switch: leave it
        pass


def choose_placement(device: str = "auto", precision: str = "auto", channels_last="auto") -> Placement:
    dev = choose_device(device)
    if dev.type == "cpu":
        keep_freed_memory()
    if precision not in PRECISIONS:
        raise UserError(f"precision '{precision}' is not valid; valid: {', '.join(PRECISIONS)}")
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif dev.type == "mps":
            precision = "fp16"
        else:
            precision = "bf16" if cpu_has_bf16() else "fp32"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if dtype is torch.float16 and dev.type == "cpu":
        raise UserError("precision fp16 is not supported on the CPU; use bf16 or fp32")
    if dev.type == "cuda":
        # fixed shapes all run long: let cuDNN time its algorithms once per shape and keep the fastest
        torch.backends.cudnn.benchmark = True
    if channels_last == "auto":
        channels_last = dev.type in ("cuda", "cpu")  # helps oneDNN and cuDNN convolutions; MPS gains nothing
    return Placement(dev, dtype, bool(channels_last))


# On a CPU a batch goes through the network in pieces of at most this many images: the activations of a piece
# stay small (cifar10-fast, 1 epoch on 10,000 images: 0.96 GB instead of 3.0), at the same speed or slightly
# better (2-core AMX Xeon, with keep_freed_memory: airbench net at batch 2000, 1297 img/s whole, 1310 in pieces
# of 250; the cifar10-90 net at batch 500, 1993 and 2014). Before keep_freed_memory the pieces looked 1.3x
# faster: the whole batch's activations were over glibc's mmap threshold and were faulted in at every step.
# A GPU wants the whole batch at once.
CPU_MICRO_BATCH = 256


def micro_batch_size(setting, batch_size: int, placement: Placement) -> int:
    """How many images one forward/backward takes: `micro_batch` resolved for this device. `auto` splits a CPU
    batch into equal pieces of at most CPU_MICRO_BATCH (2000 -> 8 x 250, 500 -> 2 x 250)."""
    if setting is None:
        return batch_size
    if setting == "auto":
        if placement.device.type != "cpu":
            return batch_size
        pieces = -(-batch_size // CPU_MICRO_BATCH)
        return -(-batch_size // pieces)
    return min(int(setting), batch_size)


# torch.compile costs a fixed half minute or more on a GPU (Inductor's kernels, once per shape) and then makes
# each step faster (airbench94 on an A100: 3.83 s eager, 3.09 s compiled, a fifth less). It pays only where the
# eager run still has several times that ahead of it: the recipes take seconds on a GPU and would spend ten
# times as long compiling.
COMPILE_PAYS_AFTER_S = 300.0


def should_compile(setting, placement: Placement, remaining_s: float | None = None) -> bool:
    """`compile: true` compiles from the first step, `false` never. `auto` compiles on CUDA only, and only once
    the first epoch has shown the rest of the run, eager, to take at least COMPILE_PAYS_AFTER_S (`remaining_s`,
    None before the first epoch). On the 2-core AMX Xeon the cifar10-90 net compiled in 18 s and then stepped
    slower than eager (1688 against 2186 img/s, bf16 channels_last, batch 250): oneDNN's eager kernels are
    already fused there, so `auto` never compiles on a CPU."""
    if setting == "auto":
        return (placement.device.type == "cuda" and remaining_s is not None
                and remaining_s >= COMPILE_PAYS_AFTER_S)
    return bool(setting)


def grad_scaler(placement: Placement):
    """fp16 on CUDA needs loss scaling; bf16 and fp32 do not."""
    enabled = placement.dtype is torch.float16 and placement.device.type == "cuda"
    return torch.amp.GradScaler("cuda", enabled=enabled)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def peak_memory(device: torch.device) -> dict:
    """This process's most resident memory so far (Linux: /proc's VmHWM, which starts again at exec, where
    getrusage's ru_maxrss carries the forking parent's: a benchmark that held 3 GB saw every child "use" 3 GB),
    and on CUDA the most the caching allocator held. Bytes."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            out["host_bytes"] = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["host_bytes"] = rss if sys.platform == "darwin" else rss * 1024  # macOS reports bytes, Linux KiB
    if device.type == "cuda":
        out["gpu_bytes"] = torch.cuda.max_memory_reserved(device)
    return out


def available_memory(device: torch.device) -> int | None:
    """Free bytes on the device, or None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
