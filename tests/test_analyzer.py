import csv
import functools
import http.server
import re
import shutil
import threading

import cv2
import numpy as np
import pytest

import analyzer
from conftest import EMOTIONS6, write_image
from emotion_analyzer import analyze as analyze_module
from emotion_analyzer.capture import ThreadedCapture
from emotion_analyzer.classify import crop_faces
from emotion_analyzer.demo_media import compose_frame, write_face_video
from emotion_analyzer.detect import FaceTracker, iou

COLUMNS = ["source", "frame", "time_s", "face", "x", "y", "w", "h", *EMOTIONS6, "emotion"]


def run(model, source, *extra):
    return analyzer.main(["--source", str(source), "--model", str(model), "--no-display", *map(str, extra)])


def read_rows(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def count_video_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "three_faces.avi"
    expected = write_face_video(path, frames=40, faces=3)
    return path, expected


def test_video_gives_boxes_csv_and_annotated_video(fresh_model, face_video, tmp_path, capsys):
    video, expected = face_video
    out_csv, out_video = tmp_path / "emotions.csv", tmp_path / "annotated.mp4"
    assert run(fresh_model, video, "--csv", out_csv, "--output", out_video) == 0
    log = capsys.readouterr().out
    assert "device: CPU, CNN on TensorFlow Lite" in log and "fps" in log and "p95" in log
    fields, rows = read_rows(out_csv)
    assert fields == COLUMNS
    assert len(rows) == 3 * 40
    for row in rows:
        frame = int(row["frame"])
        box = tuple(int(row[k]) for k in "xywh")
        assert max(iou(box, e) for e in expected[frame]) > 0.5, (frame, box)
        probabilities = [float(row[e]) for e in EMOTIONS6]
        assert sum(probabilities) == pytest.approx(1, abs=1e-3)
        # the CSV rounds to 4 decimals, so two top emotions can tie there: the named one must hold the top value
        assert float(row[row["emotion"]]) == max(probabilities)
        assert row["source"] == "three_faces.avi"
        assert float(row["time_s"]) == pytest.approx(frame / 30, abs=1e-3)
    assert sorted({row["face"] for row in rows}) == ["1", "2", "3"]  # followed, not re-numbered
    assert count_video_frames(out_video) == 40
    assert (tmp_path / "emotions_summary.png").stat().st_size > 5000
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_max_frames_stops_early(fresh_model, face_video, tmp_path):
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "e.csv", "--max-frames", "7") == 0
    assert {int(r["frame"]) for r in read_rows(tmp_path / "e.csv")[1]} == set(range(7))


def test_folder_of_images_with_unreadable_files_and_odd_formats(fresh_model, tmp_path, capsys):
    photos = tmp_path / "photos"
    frame, boxes = compose_frame(0, faces=2)
    cv2.imwrite(str(photos.mkdir() or photos / "a_colour.jpg"), frame)
    cv2.imwrite(str(photos / "b_gray.png"), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(photos / "c_alpha.png"), cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(photos / "d_noface.png"), np.full((240, 320, 3), 90, np.uint8))
    (photos / "e_empty.jpg").write_bytes(b"")
    (photos / "f_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (photos / "._a_colour.jpg").write_bytes(b"\x00\x05\x16\x07 macOS metadata")  # hidden: not an image
    (photos / "notes.txt").write_text("not an image")
    for i in range(30):
        shutil.copy(photos / "a_colour.jpg", photos / f"z_{i:03d}.jpg")
    assert run(fresh_model, photos, "--csv", tmp_path / "e.csv", "--output", tmp_path / "v.avi") == 0
    log = capsys.readouterr().out
    assert "skipped 2 unreadable file(s)" in log and "e_empty.jpg" in log and "f_broken.png" in log
    assert "._a_colour.jpg" not in log and "notes.txt" not in log
    rows = read_rows(tmp_path / "e.csv")[1]
    per_source = {}
    for row in rows:
        per_source[row["source"]] = per_source.get(row["source"], 0) + 1
    assert per_source["a_colour.jpg"] == per_source["b_gray.png"] == per_source["c_alpha.png"] == 2
    assert "d_noface.png" not in per_source
    assert count_video_frames(tmp_path / "v.avi") == 34


def test_single_image(fresh_model, tmp_path):
    frame, boxes = compose_frame(0, faces=1)
    image = write_image(tmp_path / "one.png", frame)
    assert run(fresh_model, image, "--csv", tmp_path / "e.csv") == 0
    (row,) = read_rows(tmp_path / "e.csv")[1]
    assert iou(tuple(int(row[k]) for k in "xywh"), boxes[0]) > 0.5


def test_no_faces_at_all(fresh_model, tmp_path, capsys):
    blank = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(10):
        writer.write(np.full((240, 320, 3), 100, np.uint8))
    writer.release()
    assert run(fresh_model, blank, "--csv", tmp_path / "e.csv", "--output", tmp_path / "v.avi") == 0
    assert "no faces were found" in capsys.readouterr().out
    fields, rows = read_rows(tmp_path / "e.csv")
    assert fields == COLUMNS and rows == []
    assert count_video_frames(tmp_path / "v.avi") == 10


def test_faces_cut_by_the_frame_edge_are_clamped():
    gray = np.zeros((100, 120), np.uint8)
    batch, used, boxes = crop_faces(gray, [(-20, 10, 50, 50), (100, 80, 40, 40), (500, 500, 10, 10)])
    assert batch.shape == (2, 48, 48, 1) and used == [0, 1]
    assert boxes == [(0, 10, 30, 50), (100, 80, 20, 20)]


def test_face_half_out_of_frame_is_still_classified(fresh_model, tmp_path):
    frame, boxes = compose_frame(0, faces=1, width=640, height=480)
    x, y, w, h = boxes[0]
    shifted = np.zeros_like(frame)
    shift = x + w // 3  # push the head so a third of the face box leaves on the left
    shifted[:, : frame.shape[1] - shift] = frame[:, shift:]
    image = write_image(tmp_path / "edge.png", shifted)
    assert run(fresh_model, image, "--csv", tmp_path / "e.csv", "--min-neighbors", "2") == 0
    rows = read_rows(tmp_path / "e.csv")[1]
    assert all(int(r["x"]) >= 0 and int(r["x"]) + int(r["w"]) <= 640 for r in rows)


def test_tracker_keeps_ids_and_smooths():
    tracker = FaceTracker(window=3)
    first = tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)])
    second = tracker.update([(205, 2, 50, 50), (3, 1, 50, 50)])
    assert [t.face_id for t in second] == [first[1].face_id, first[0].face_id]
    one_hot = np.eye(6)
    tracker.add_probabilities(second, [one_hot[0], one_hot[1]])
    smoothed = tracker.add_probabilities(second, [one_hot[2], one_hot[1]])
    np.testing.assert_allclose(smoothed[0], (one_hot[0] + one_hot[2]) / 2)


@pytest.mark.parametrize("source, message", [
    ("7", "cannot open camera 7"),
    ("nowhere.mp4", "not found"),
])
def test_sources_that_cannot_open_give_one_line(fresh_model, capsys, source, message):
    assert run(fresh_model, source) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_undecodable_video(fresh_model, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    assert run(fresh_model, broken, "--csv", tmp_path / "e.csv") == 2
    assert "cannot decode video" in capsys.readouterr().err


def test_missing_or_corrupt_model_says_how_to_get_one(fresh_model, face_video, tmp_path, capsys, copy_of):
    assert run(tmp_path / "none.keras", face_video[0]) == 2
    assert "training.py" in capsys.readouterr().err
    corrupt = copy_of(fresh_model)
    shutil.copy(fresh_model.with_suffix(".json"), corrupt.with_suffix(".json"))
    corrupt.write_bytes(corrupt.read_bytes()[:5000])
    assert run(corrupt, face_video[0]) == 2
    err = capsys.readouterr().err
    assert "cannot be loaded" in err and "retrain" in err and "Traceback" not in err
    corrupt.with_suffix(".json").unlink()
    assert run(corrupt, face_video[0]) == 2
    assert "needs its JSON" in capsys.readouterr().err


def test_no_display_available_is_one_line(fresh_model, face_video, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert analyzer.main(["--source", str(face_video[0]), "--model", str(fresh_model)]) == 2
    assert "--no-display" in capsys.readouterr().err


class StoppingCamera:
    """A camera that delivers a few frames, then stops (unplugged)."""

    def __init__(self, frames):
        self.frames = frames
        self.position = 0
        self.fps = 30.0
        self.skipped = []
        self.released = False

    def read(self):
        if self.position >= self.frames:
            return None
        self.position += 1
        frame, _ = compose_frame(self.position, faces=2)
        return self.position - 1, frame, "camera 0"

    def release(self):
        self.released = True


def test_camera_that_stops_mid_run_finishes_cleanly(fresh_model, tmp_path, monkeypatch, capsys):
    camera = StoppingCamera(12)
    monkeypatch.setattr(analyze_module, "open_source", lambda source: ("camera", camera))
    assert run(fresh_model, "0", "--csv", tmp_path / "e.csv", "--output", tmp_path / "v.avi") == 0
    log = capsys.readouterr().out
    assert "stopped delivering frames after 12" in log
    processed = int(re.search(r"^([\d,]+) frames in", log, re.M).group(1))
    assert 1 <= processed <= 12 and camera.released
    rows = read_rows(tmp_path / "e.csv")[1]
    assert len({r["frame"] for r in rows}) == processed  # two faces in every frame, none lost
    assert count_video_frames(tmp_path / "v.avi") == processed


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_stream_url_is_read_live_until_it_ends(fresh_model, face_video, tmp_path, capsys):
    path, _ = face_video
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietFileHandler, directory=str(path.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    try:
        assert run(fresh_model, url, "--csv", tmp_path / "e.csv") == 0
    finally:
        server.shutdown()
        server.server_close()
    log = capsys.readouterr().out
    assert f"source: {url} (stream)" in log
    assert "stopped delivering frames after 40" in log  # every frame of the file came over HTTP
    processed = int(re.search(r"^([\d,]+) frames in", log, re.M).group(1))
    assert 1 <= processed <= 40  # a live source hands over only the newest frame
    rows = read_rows(tmp_path / "e.csv")[1]
    assert rows and all(row["source"] == url for row in rows)
    assert len({r["frame"] for r in rows}) == processed  # faces in every frame that was processed


def test_ctrl_c_leaves_complete_csv_and_playable_video(fresh_model, face_video, tmp_path, monkeypatch):
    real_process = analyze_module.Analyzer.process
    calls = []

    def interrupt_at_ten(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 11:
            raise KeyboardInterrupt
        return real_process(self, *args, **kwargs)

    monkeypatch.setattr(analyze_module.Analyzer, "process", interrupt_at_ten)
    out_csv, out_video = tmp_path / "e.csv", tmp_path / "v.mp4"
    assert run(fresh_model, face_video[0], "--csv", out_csv, "--output", out_video) == 130
    rows = read_rows(out_csv)[1]
    assert len(rows) == 30 and {int(r["frame"]) for r in rows} == set(range(10))
    assert count_video_frames(out_video) == 10


def test_latest_only_capture_hands_out_the_newest_frame():
    camera = StoppingCamera(50)
    with ThreadedCapture(camera, latest_only=True, live_clock=True) as capture:
        first = capture.next_frame()
        while not capture.finished.is_set():
            pass
        last = capture.next_frame()
        assert capture.next_frame(timeout=0.2) is None
    assert first.index < last.index == 49
    assert capture.dropped == 50 - 2
    assert camera.released


def test_bad_output_name_is_refused_before_anything_is_written(fresh_model, face_video, tmp_path, capsys):
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "e.csv", "--output", tmp_path / "v.gif") == 2
    assert "--output" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
