"""The CNN's TensorFlow Lite copy kept between runs: converting a model takes seconds and TensorFlow,
so each copy is made once per model file's content, test-time views and weight type (and converter
version), and later starts read it, with LiteRT, without TensorFlow.

The folder is $EMOTION_ANALYZER_CACHE, else $XDG_CACHE_HOME/emotion-analyzer, else
~/.cache/emotion-analyzer. Each copy is written under a temporary name and renamed, so two processes
building it at once each leave a whole file, and a reader never sees half of one.
"""

import hashlib
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from emotion_analyzer.common.fileio import write_bytes_atomic

CACHE_ENV = "EMOTION_ANALYZER_CACHE"
# Raised when what is stored changes, so older copies are never read as newer ones.
CACHE_FORMAT = 1


def cache_folder():
    """Where converted models are kept."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emotion-analyzer" / "engines"


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converter_version():
    """TensorFlow's version, read from its package metadata (importing it is what a cached start avoids)."""
    try:
        return version("tensorflow")
    except PackageNotFoundError:
        return "unknown"


def cached_copy_path(model_path, tta, int8_weights):
    """The file a converted copy of `model_path` read with `tta` views is kept in."""
    weights = "int8" if int8_weights else "float32"
    name = f"{file_digest(model_path)[:40]}-{tta}-{weights}-tf{converter_version()}-v{CACHE_FORMAT}.tflite"
    return cache_folder() / name


def read_cached(path):
    """The stored flatbuffer, or None when there is none (or it cannot be read)."""
    try:
        return Path(path).read_bytes() or None
    except OSError:
        return None


def keep(path, flatbuffer):
    """Store a converted copy; a folder that cannot be written only means the next start converts again."""
    try:
        write_bytes_atomic(path, flatbuffer)
    except OSError as exc:
        return f"the converted model was not cached ({path.parent}: {exc.strerror or exc})"
    return None
