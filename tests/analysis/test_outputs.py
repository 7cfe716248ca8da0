import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emotion_analyzer.analysis import outputs as results
from emotion_analyzer.errors import UserError
from emotion_analyzer.analysis.capture import Frame
from emotion_analyzer.analysis.faces import FaceReading
from emotion_analyzer.analysis.outputs import CsvLog, VideoOutput


class UnopenableWriter:
    """What cv2.VideoWriter gives when OpenCV was built without the codec: an object that is not open."""

    def __init__(self, path, *args):
        self.path = path
        open(path, "wb").close()  # as OpenCV may leave behind

    def isOpened(self):
        return False

    def release(self):
        pass


def test_a_video_writer_that_cannot_open_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(results.cv2, "VideoWriter", UnopenableWriter)
    video = VideoOutput(tmp_path / "out.mp4", fps=30.0)
    with pytest.raises(UserError, match="cannot write video .*out.mp4"):
        video.write(np.zeros((48, 64, 3), np.uint8))
    video.close()  # as the analyzer's cleanup does
    assert list(tmp_path.iterdir()) == []  # no 0-byte file under the final name, no temporary left


def test_outputs_appear_under_their_names_only_when_closed(tmp_path):
    log = CsvLog(tmp_path / "faces.csv", ["happy", "sad"])
    video = VideoOutput(tmp_path / "faces.avi", fps=10.0)
    log.write(Frame(0, 0.0, None, "clip"), FaceReading(1, (1, 2, 3, 4), np.array([0.8, 0.2]), 0))
    for _ in range(3):
        video.write(np.full((32, 32, 3), 100, np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
    log.close()
    video.close()
    assert (tmp_path / "faces.csv").read_text().splitlines()[1] == "clip,0,0.000,1,1,2,3,4,0.8000,0.2000,happy"
    capture = cv2.VideoCapture(str(tmp_path / "faces.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3 == video.frames
    capture.release()


def test_cells_a_spreadsheet_would_run_as_formulas_are_quoted(tmp_path):
    import csv

    labels = ["=cmd|' /C calc'!A0", "happy", "+1", "@SUM(A1)", "-2"]
    log = CsvLog(tmp_path / "faces.csv", labels)
    named = Frame(0, 0.0, None, "=HYPERLINK(\"http://x\")")
    log.write(named, FaceReading(1, (1, 2, 3, 4), np.full(5, 0.2, np.float32), 0))
    log.close()
    with open(tmp_path / "faces.csv", newline="") as handle:
        header, row = list(csv.reader(handle))
    for cell in header + row:
        assert not cell.startswith(("=", "+", "-", "@")), cell
    assert "'=cmd|' /C calc'!A0" in header and "happy" in header
    assert row[0] == "'=HYPERLINK(\"http://x\")" and row[1] == "0" and row[3] == "1"


def limited_to(size):
    """For a child process: files it writes may not grow past `size` bytes (EFBIG, as a full disk's ENOSPC)."""
    def limit():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error to handle, not a signal that kills
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return limit


@pytest.mark.parametrize("run_kind", ["one video", "folder run"])
def test_an_output_that_cannot_be_written_is_one_line_and_leaves_no_partial_file(fresh_model, tmp_path, project_root,
                                                                                 run_kind):
    from demo_media import write_face_video

    folder = tmp_path / "clips"
    folder.mkdir()
    write_face_video(folder / "clip.avi", frames=60, faces=3)  # about 180 rows: more than 8 KB
    out = tmp_path / "out"
    outputs = (["--source", folder / "clip.avi", "--csv", out / "faces.csv"] if run_kind == "one video"
               else ["--source", folder, "--csv-dir", out])
    out.mkdir()
    done = subprocess.run([sys.executable, str(project_root / "analyzer.py"), *map(str, outputs), "--model",
                           str(fresh_model), "--no-display"], capture_output=True, text=True, timeout=300,
                          preexec_fn=limited_to(8000), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "cannot write" in last and "File too large" in last and "run again" in last, last
    assert not [p for p in out.rglob("*") if p.is_file()]  # no CSV, complete-looking or partial
