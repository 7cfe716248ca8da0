"""Which device TensorFlow computes on, asked in one place for training and the analyzer, and a quiet
start for TensorFlow's C++ side."""

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

# TensorFlow's C++ code logs through absl straight to file descriptor 2, before and regardless of
# TF_CPP_MIN_LOG_LEVEL: on a machine without a GPU a start prints about twenty lines, one of them an
# "E" line about cuInit, that read like failures to a user. INFO and WARNING lines are what that
# variable's level 2 would hide; errors are kept, except cuInit's when the log already said there is
# no CUDA driver at all (the expected case on a laptop).
NATIVE_INFO_OR_WARNING = re.compile(r"^[IW]\d{4} ")
NATIVE_NOISE = ("WARNING: All log messages before absl::InitializeLog() is called",
                "To enable the following instructions:",
                "INFO: Created TensorFlow Lite XNNPACK delegate")
NO_CUDA_DRIVER = "Could not find cuda drivers"
CUINIT_FAILED = "failed call to cuInit"


def lines_worth_showing(text):
    """The lines of TensorFlow's native log a user should see (see NATIVE_INFO_OR_WARNING above)."""
    no_driver = NO_CUDA_DRIVER in text
    return [line for line in text.splitlines(keepends=True)
            if line.strip()
            and not NATIVE_INFO_OR_WARNING.match(line)
            and not line.startswith(NATIVE_NOISE)
            and not (no_driver and CUINIT_FAILED in line)]


@contextlib.contextmanager
def native_log_caught(into):
    """Catch what native code writes to file descriptor 2 inside the block; the text is appended to the
    list `into` as the block ends, however it ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            into.append(caught.read().decode("utf-8", errors="replace"))


@contextlib.contextmanager
def quiet_native_log():
    """Catch what native code writes to file descriptor 2 inside the block and pass on only the
    lines worth showing; everything, if the block raises, so a failure keeps its whole story."""
    caught, failed = [], True
    try:
        with native_log_caught(caught):
            yield
            failed = False
    finally:
        text = "".join(caught)
        lines = text.splitlines(keepends=True) if failed else lines_worth_showing(text)
        sys.stderr.write("".join(line if line.endswith("\n") else line + "\n" for line in lines))
        sys.stderr.flush()


def hide_gpus():
    """Make TensorFlow see no GPU (--cpu); only takes effect before TensorFlow initialises."""
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"


def start_tensorflow():
    """Import TensorFlow and look for GPUs once, quietly; call before anything else uses it (it is
    cheap when TensorFlow has started)."""
    if "tensorflow" in sys.modules:
        return
    with quiet_native_log():
        gpu_names()  # importing TensorFlow and asking for GPUs is what logs


def gpu_present():
    """Whether TensorFlow has a GPU to run on, asked without starting TensorFlow where there can be none:
    TensorFlow's Linux and Windows (WSL) builds run on NVIDIA GPUs only, which show as device nodes."""
    if "tensorflow" not in sys.modules:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1")
        nvidia = any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/dxg").exists()
        if hidden or not nvidia:
            return False
        start_tensorflow()
    return bool(gpu_names())


def gpu_names():
    import tensorflow as tf

    return [gpu.name for gpu in tf.config.list_physical_devices("GPU")]


# CPU flags (Linux /proc/cpuinfo) of the units that compute bfloat16 natively; without them TensorFlow
# emulates it, several times slower than float32 (docs/benchmarks.md, bench_training.py).
NATIVE_BFLOAT16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags as the kernel lists them; empty where there is no such file."""
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def choose_precision(requested, flags=None, gpus=None):
    """(precision, reason): `requested` as asked, or for auto bfloat16 where the CPU computes it
    natively and float32 elsewhere (a GPU's bfloat16 speed is not measured here, so float32)."""
    if requested != "auto":
        return requested, f"--precision {requested} asked for"
    if gpus is None:
        gpus = gpu_names()
    if gpus:
        return "float32", "auto: training on a GPU, where bfloat16 has not been measured"
    native = sorted(NATIVE_BFLOAT16_FLAGS & (cpu_flags() if flags is None else flags))
    if native:
        return "bfloat16", f"auto: the CPU computes bfloat16 natively ({', '.join(native)})"
    return "float32", "auto: the CPU has no AMX or AVX-512 BF16, so bfloat16 would be emulated and slow"


def describe_device():
    """'CPU', or 'GPU (names)' when TensorFlow sees one."""
    gpus = gpu_names()
    return f"GPU ({', '.join(gpus)})" if gpus else "CPU"
