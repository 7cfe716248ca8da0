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
