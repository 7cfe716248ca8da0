import os
import pickle
import sys

import numpy as np
import pytest

from emotion_analyzer.errors import UserError
from emotion_analyzer.common.fileio import atomic_path, load_array_pickle, save_pickle_atomic, write_text_atomic


class RunsCode:
    """A pickle payload that would create a file when unpickled by a plain pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_arrays_and_lists_round_trip(tmp_path):
    images = np.arange(2 * 48 * 48, dtype=np.uint8).reshape(2, 48, 48, 1)
    save_pickle_atomic(tmp_path / "x.pickle", images)
    save_pickle_atomic(tmp_path / "l.pickle", ["angry", "happy"])
    np.testing.assert_array_equal(load_array_pickle(tmp_path / "x.pickle"), images)
    assert load_array_pickle(tmp_path / "l.pickle") == ["angry", "happy"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_load_from_every_protocol(tmp_path, protocol):
    labels = np.array([0, 5, 3], dtype=np.int64)
    (tmp_path / "y.pickle").write_bytes(pickle.dumps(labels, protocol=protocol))
    np.testing.assert_array_equal(load_array_pickle(tmp_path / "y.pickle"), labels)


def test_tampered_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "features.pickle").write_bytes(pickle.dumps(RunsCode(marker)))
    with pytest.raises(UserError, match="refused to load.*posix.system|refused to load.*os.system"):
        load_array_pickle(tmp_path / "features.pickle")
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    save_pickle_atomic(tmp_path / "o.pickle", np.array([1, "two"], dtype=object))
    with pytest.raises(UserError, match="object array"):
        load_array_pickle(tmp_path / "o.pickle")


@pytest.mark.parametrize("content, message", [(b"", "not a readable pickle"),
                                              (b"\x80\x05garbage", "not a readable pickle")])
def test_damaged_pickles_give_clear_errors(tmp_path, content, message):
    (tmp_path / "bad.pickle").write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_array_pickle(tmp_path / "bad.pickle")


def test_missing_pickle_says_run_prep(tmp_path):
    with pytest.raises(UserError, match="prep_data.py"):
        load_array_pickle(tmp_path / "features.pickle")


def test_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_pickle_of_deeply_nested_lists_is_refused_in_one_line(tmp_path):
    nested = []
    for _ in range(20000):
        nested = [nested]
    path = tmp_path / "features.pickle"
    sys.setrecursionlimit(50000)  # to write it; the loader runs at the default limit
    try:
        path.write_bytes(pickle.dumps(nested, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        sys.setrecursionlimit(1000)
    with pytest.raises(UserError, match="features.pickle: refused to load .*nested deeper"):
        load_array_pickle(path)
