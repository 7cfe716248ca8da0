"""Atomic writes, a folder one run uses at a time, and a pickle loader that only accepts plain arrays
and lists."""

import contextlib
import fcntl
import io
import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from emotion_analyzer.errors import UserError


def temp_path_beside(path):
    """A new empty temporary file in `path`'s folder, hidden, keeping its suffix (for writers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    return Path(tmp_name)


def write_failed(path, exc):
    """The one line for an output that could not be written (a full disk, a file-size or quota limit)."""
    why = exc.strerror or str(exc)
    return (f"cannot write {printable(path)}: {why}; nothing half-written was kept under that name: free"
            " space (or raise the limit) and run again")


def commit_temp(tmp, path):
    """Rename a finished temporary file over `path`."""
    # mkstemp creates the file private (0600); give the result the permissions of any new file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    An interrupted write (Ctrl-C, a crash, a full disk) leaves the old file, or none, never half of one.
    """
    tmp = temp_path_beside(path)
    try:
        yield tmp
        commit_temp(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_output_path(path, flag):
    """Refuse, before any work, an output file whose folder cannot be made or written, in one line."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name")
    check_output_folder(path.parent, flag, path)


def check_output_folder(folder, flag, named=None):
    """A UserError naming `flag` and `named` (the folder itself by default) when `folder` could not be
    made or written: a part of it is a file, or its nearest existing folder is read-only. Makes nothing."""
    named = named or folder
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {named}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK):
        raise UserError(f"{flag} {named}: {existing} is not writable; choose another path")


def printable(text):
    """`text` with any bytes of a file name that are not UTF-8 (Latin-1 names from an old archive or a
    Windows share, which Python keeps as lone surrogates) written as \\xNN escapes, so the name can be
    printed, put in a CSV or passed to OpenCV-bound text without crashing."""
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(path):
    return printable(path) == str(path)


IN_USE_FILE = ".in-use.lock"


@contextlib.contextmanager
def used_alone(folder, flag):
    """Hold `folder` for this run: a second run on it is refused in one line while this one lasts. The
    lock is the kernel's (flock), so a run that dies, however, leaves the folder free."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / IN_USE_FILE
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise UserError(f"{flag} {folder} is in use by another run" + (f" (process {holder})" if holder else "")
                            + ": wait for it to end, or choose another folder") from None
        if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
            break  # the lock file still in place: not one the run before has just removed
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()  # the lock goes with the file descriptor


def write_bytes_atomic(path, data):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def save_pickle_atomic(path, obj):
    write_bytes_atomic(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


# numpy pickles an ndarray as a call to one of these reconstructors (protocol 5: _frombuffer) plus
# its dtype; nothing else
# needs to be importable to load our files, so anything else in a pickle is refused, not run.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol 2 spells bytes; it only turns a str into bytes
}


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise _RefusedGlobal(f"refusing to load {module}.{name}: only numpy arrays and plain lists are allowed")


def _check_plain(obj, path):
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UserError(f"{path}: holds an object array; expected numbers. Re-create it with prep_data.py.")
        return
    if isinstance(obj, (list, tuple)):
        for item in obj:
            _check_plain(item, path)
        return
    if isinstance(obj, (int, float, str, bool, np.generic)):
        return
    raise UserError(f"{path}: holds a {type(obj).__name__}; expected an array or a list."
                    " Re-create it with prep_data.py.")


def load_array_pickle(path, data=None):
    """Load a pickle written by prep_data.py (from `data`, its bytes, when already read), refusing
    anything but numpy arrays and plain lists.

    A tampered pickle that tries to import and call something is refused before it can run.
    """
    path = Path(path)
    if data is None:
        if not path.is_file():
            raise UserError(f"{path}: not found. Run prep_data.py to create it.")
        data = path.read_bytes()
    try:
        obj = _ArrayOnlyUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as exc:
        raise UserError(f"{path}: refused to load ({exc}). Re-create it with prep_data.py.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise UserError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})."
                        " Re-create it with prep_data.py.") from None
    except RecursionError:
        raise UserError(f"{path}: refused to load (nested deeper than any prepared set is)."
                        " Re-create it with prep_data.py.") from None
    try:
        _check_plain(obj, path)
    except RecursionError:
        raise UserError(f"{path}: refused to load (lists nested deeper than any prepared set's)."
                        " Re-create it with prep_data.py.") from None
    return obj


# A cell a spreadsheet would run as a formula starts with one of these (OWASP's CSV injection advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell):
    """`cell` as a CSV cell no spreadsheet runs: text starting like a formula gets a leading quote, as
    spreadsheet tools expect; numbers and other text are left as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell
