"""TensorFlow's native start-up log: the noise is hidden, anything else (and everything on failure) is shown."""

import os
import subprocess
import sys

import numpy as np
import pytest

from demo_media import write_image
from emotion_analyzer.common.device import lines_worth_showing, quiet_native_log


# What TensorFlow 2.21 wrote to stderr when analyzer.py started on this machine (no GPU), abridged.
NO_GPU_START = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795529189.498929   17752 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will
I0000 00:00:1795529189.721248   17752 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate
E0000 00:00:1795529202.952914   17752 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call
W0000 00:00:1795529206.305701   17752 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.
I0000 00:00:1795529206.306379   17752 reader.cc:83] Reading SavedModel from: /tmp/tmprrvr6adg
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
"""


def test_start_up_noise_without_a_gpu_is_hidden():
    assert lines_worth_showing(NO_GPU_START) == []


def test_native_errors_stay_visible():
    driver_present_but_broken = ("E0000 00:00:1795529202.952914   17752 cuda_platform.cc:52] failed call to cuInit:"
                                 " INTERNAL: CUDA error\n")
    other_error = "E0000 00:00:1.0   1 some_kernel.cc:9] out of memory allocating 4 GB\n"
    assert lines_worth_showing(driver_present_but_broken) == [driver_present_but_broken]
    assert lines_worth_showing(NO_GPU_START + other_error) == [other_error]


def test_quiet_native_log_filters_file_descriptor_2(capfd):
    with quiet_native_log():
        os.write(2, NO_GPU_START.encode())
        os.write(2, b"something TensorFlow has never said before\n")
    assert capfd.readouterr().err == "something TensorFlow has never said before\n"


def test_quiet_native_log_shows_everything_when_the_block_fails(capfd):
    with pytest.raises(RuntimeError):
        with quiet_native_log():
            os.write(2, NO_GPU_START.encode())
            raise RuntimeError("import failed")
    assert capfd.readouterr().err == NO_GPU_START


def test_analyzer_starts_without_native_log_lines(fresh_model, tmp_path, project_root):
    image = tmp_path / "empty.png"
    write_image(image, np.full((120, 160), 90, np.uint8))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    done = subprocess.run([sys.executable, str(project_root / "analyzer.py"), "--source", str(image), "--model",
                           str(fresh_model), "--no-display", "--verbose"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("device: CPU"), done.stdout
    native = [line for line in done.stderr.splitlines() if "absl" in line or line[:1] in "IWE" and line[1:5].isdigit()]
    assert native == [], done.stderr


def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it():
    from emotion_analyzer.common.device import choose_precision

    amx = {"avx512f", "amx_tile", "amx_bf16", "avx512_bf16"}
    precision, reason = choose_precision("auto", flags=amx, gpus=[])
    assert precision == "bfloat16" and "amx_bf16" in reason
    assert choose_precision("auto", flags={"avx2", "fma"}, gpus=[])[0] == "float32"
    assert choose_precision("auto", flags={"avx512f", "avx512_bf16"}, gpus=[])[0] == "bfloat16"
    assert choose_precision("auto", flags=amx, gpus=["/physical_device:GPU:0"])[0] == "float32"
    assert choose_precision("bfloat16", flags={"avx2"}, gpus=[]) == ("bfloat16", "--precision bfloat16 asked for")


def test_cpu_flags_are_read_from_the_kernels_list(tmp_path):
    from emotion_analyzer.common.device import cpu_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()
