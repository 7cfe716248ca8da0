import csv
import functools
import http.server
import re
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import replace

import cv2
import numpy as np
import pytest

import analyzer
from demo_media import write_image
from emotion_analyzer.analysis import analyzer as analyze_module
from demo_media import compose_frame, write_face_video
from emotion_analyzer.core.framing import DEFAULT_FRAMINGS
from emotion_analyzer.analysis.track import iou

@pytest.fixture
def csv_columns(emotions6):
    """The columns --csv writes for fresh_model, as the README describes them."""
    return ["source", "frame", "time_s", "face", "x", "y", "w", "h", *emotions6, "emotion"]


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


def test_video_gives_boxes_csv_and_annotated_video(fresh_model, face_video, tmp_path, capsys, emotions6,
                                                   csv_columns):
    video, expected = face_video
    out_csv, out_video = tmp_path / "emotions.csv", tmp_path / "annotated.mp4"
    assert run(fresh_model, video, "--csv", out_csv, "--output", out_video, "--verbose") == 0
    log = capsys.readouterr().out
    assert "device: CPU, CNN on TensorFlow Lite" in log and "fps" in log and "p95" in log
    fields, rows = read_rows(out_csv)
    assert fields == csv_columns
    assert len(rows) == 3 * 40
    for row in rows:
        frame = int(row["frame"])
        box = tuple(int(row[k]) for k in "xywh")
        assert max(iou(box, e) for e in expected[frame]) > 0.5, (frame, box)
        probabilities = [float(row[e]) for e in emotions6]
        assert sum(probabilities) == pytest.approx(1, abs=1e-3)
        # the CSV rounds to 4 decimals, so two top emotions can tie there: the named one must hold the top value
        assert float(row[row["emotion"]]) == max(probabilities)
        assert row["source"] == "three_faces.avi"
        assert float(row["time_s"]) == pytest.approx(frame / 30, abs=1e-3)
    assert sorted({row["face"] for row in rows}) == ["1", "2", "3"]  # followed, not re-numbered
    assert count_video_frames(out_video) == 40
    assert (tmp_path / "emotions_summary.png").stat().st_size > 5000
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    # The annotated video is a deliverable: faces drawn, but not the window's status line (fps, keys).
    capture = cv2.VideoCapture(str(out_video))
    written, source = capture.read()[1], cv2.VideoCapture(str(video)).read()[1]
    capture.release()
    band = (slice(4, 26), slice(4, 300))
    assert np.abs(written[band].astype(int) - source[band].astype(int)).mean() < 8


def test_max_frames_stops_early(fresh_model, face_video, tmp_path):
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "e.csv", "--max-frames", "7") == 0
    assert {int(r["frame"]) for r in read_rows(tmp_path / "e.csv")[1]} == set(range(7))


def test_a_quiet_video_run_shows_no_progress_bar(fresh_model, face_video, tmp_path, capsys):
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "e.csv", "--max-frames", "3") == 0
    assert "analyzing" in capsys.readouterr().err
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "e.csv", "--max-frames", "3", "--quiet") == 0
    assert capsys.readouterr() == ("", "")


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
    assert run(fresh_model, photos, "--csv", tmp_path / "e.csv", "--output", tmp_path / "drawn") == 0
    log = capsys.readouterr().out
    assert "skipped 1 (empty file (0 bytes)): e_empty.jpg" in log
    assert "skipped 1 (truncated PNG (no IEND chunk)): f_broken.png" in log
    assert "._a_colour.jpg" not in log and "notes.txt" not in log
    rows = read_rows(tmp_path / "e.csv")[1]
    per_source = {}
    for row in rows:
        per_source[row["source"]] = per_source.get(row["source"], 0) + 1
    assert per_source["a_colour.jpg"] == per_source["b_gray.png"] == per_source["c_alpha.png"] == 2
    # A photo with no face has its row, so "no face" differs from "not read" (no row at all).
    (no_face,) = [row for row in rows if row["source"] == "d_noface.png"]
    assert no_face["emotion"] == "no face" and no_face["face"] == no_face["x"] == no_face["happy"] == ""
    (empty,) = [row for row in rows if row["source"] == "e_empty.jpg"]  # named, with why it has no face
    assert empty["emotion"] == "unreadable" and empty["face"] == ""
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert len(drawn) == 34 and "a_colour.jpg" in drawn and "c_alpha.png" in drawn and "e_empty.jpg" not in drawn


def test_photos_in_subfolders_are_read_and_named_by_their_path_under_the_folder(fresh_model, tmp_path):
    photos = tmp_path / "photos"
    frame = compose_frame(0, faces=1)[0]
    for name in ("top.jpg", "happy/001.jpg", "neutral/001.jpg", "neutral/more/002.png", ".hidden/003.jpg"):
        write_image(photos / name, frame)
    assert run(fresh_model, photos, "--csv", tmp_path / "e.csv") == 0
    sources = {row["source"] for row in read_rows(tmp_path / "e.csv")[1]}
    assert sources == {"top.jpg", "happy/001.jpg", "neutral/001.jpg", "neutral/more/002.png"}
    # A folder run reads them too, into the folder's photos.csv.
    assert run(fresh_model, photos, "--csv-dir", tmp_path / "out") == 0
    assert {row["source"] for row in read_rows(tmp_path / "out" / "photos.csv")[1]} == sources


def test_each_photo_s_answer_is_one_plain_line_and_diagnostics_wait_for_verbose(fresh_model, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_image(photos / "happy" / "one.png", compose_frame(0, faces=1)[0])
    write_image(photos / "group.png", compose_frame(3, faces=3)[0])
    write_image(photos / "wall.png", np.full((240, 320, 3), 90, np.uint8))
    assert run(fresh_model, photos, "--detector", "haar") == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"group\.png: 3 faces: \w+ \d+%, \w+ \d+%, \w+ \d+%", out[0]), out
    assert re.fullmatch(r"happy/one\.png: \w+ \d+%", out[1]) and out[2] == "wall.png: no face", out
    assert re.fullmatch(r"3 photo\(s\), 4 face\(s\): .*; no face in 1", out[3]) and len(out) == 4, out
    assert run(fresh_model, photos, "--detector", "haar", "--quiet") == 0
    assert capsys.readouterr().out == ""
    assert run(fresh_model, photos, "--detector", "haar", "--verbose") == 0
    verbose = capsys.readouterr().out
    assert "device: CPU" in verbose and "wall.png: no face" in verbose and "fps" in verbose


def test_a_photo_run_s_chart_counts_faces_per_emotion(fresh_model, tmp_path, monkeypatch):
    from emotion_analyzer.common import plots

    drawn = {}
    monkeypatch.setattr(plots, "plot_emotion_counts", lambda counts, labels, photos, without_face, path:
                        drawn.update(counts=list(counts), photos=photos, without_face=without_face))
    photos = tmp_path / "photos"
    write_image(photos / "a.png", compose_frame(0, faces=2)[0])
    write_image(photos / "b.png", np.full((240, 320, 3), 90, np.uint8))
    assert run(fresh_model, photos, "--detector", "haar", "--csv", tmp_path / "e.csv") == 0
    rows = read_rows(tmp_path / "e.csv")[1]
    assert sum(drawn["counts"]) == 2 == sum(row["face"] != "" for row in rows)
    assert drawn["photos"] == 2 and drawn["without_face"] == 1


def test_a_photo_is_written_annotated_as_the_library_draws_it(fresh_model, tmp_path, capsys):
    from emotion_analyzer import EmotionRecognizer

    frame = compose_frame(0, faces=2)[0]
    photo = write_image(tmp_path / "two.png", frame)
    assert run(fresh_model, photo, "--output", tmp_path / "drawn.png") == 0
    assert f"wrote 1 annotated photo(s) to {tmp_path / 'drawn.png'}" in capsys.readouterr().out
    drawn = cv2.imread(str(tmp_path / "drawn.png"))
    library = EmotionRecognizer(model=fresh_model).draw_emotions(photo)
    np.testing.assert_array_equal(drawn, library)
    assert drawn.shape == frame.shape and (np.abs(drawn.astype(int) - frame).max(axis=2) > 60).mean() > 0.01
    assert run(fresh_model, photo, "--output", tmp_path / "drawn.mp4") == 2
    assert "a photo is written as a photo; use a name ending in .jpg" in capsys.readouterr().err


def test_a_folder_of_photos_is_written_annotated_into_a_folder_by_the_same_names(fresh_model, tmp_path, capsys):
    photos = tmp_path / "photos"
    frame = compose_frame(0, faces=1)[0]
    for name in ("happy/001.jpg", "neutral/more/002.png"):
        write_image(photos / name, frame)
    write_image(photos / "scan.pgm", cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))  # read, but not written as .pgm
    assert run(fresh_model, photos, "--output", tmp_path / "drawn") == 0
    written = sorted(p.relative_to(tmp_path / "drawn").as_posix() for p in (tmp_path / "drawn").rglob("*.*"))
    assert written == ["happy/001.jpg", "neutral/more/002.png", "scan.pgm.png"]
    assert run(fresh_model, photos, "--output", photos / "drawn") == 2
    assert "is inside the source folder" in capsys.readouterr().err
    assert not (photos / "drawn").exists()


def test_photos_faces_as_json_are_the_librarys_dicts_and_no_face_is_an_empty_list(fresh_model, tmp_path, capsys):
    import json

    from emotion_analyzer import EmotionRecognizer

    photos = tmp_path / "photos"
    write_image(photos / "a.png", compose_frame(0, faces=2)[0])
    write_image(photos / "b.png", np.full((240, 320, 3), 90, np.uint8))
    assert run(fresh_model, photos, "--json", tmp_path / "faces.json") == 0
    read = json.loads((tmp_path / "faces.json").read_text())
    assert [photo["photo"] for photo in read] == ["a.png", "b.png"] and read[1]["faces"] == []
    library = EmotionRecognizer(model=fresh_model).detect_emotions(str(photos / "a.png"))
    assert len(read[0]["faces"]) == 2 == len(library)
    for written, face in zip(read[0]["faces"], library):
        assert written["box"] == list(face["box"]) and written["emotion"] == face["emotion"]
        assert written["emotions"] == pytest.approx(face["emotions"], abs=1e-6)
    video = tmp_path / "clip.avi"
    write_face_video(video, frames=3)
    capsys.readouterr()
    assert run(fresh_model, video, "--json", tmp_path / "v.json") == 2
    assert "JSON is written for photos; for a video use --csv" in capsys.readouterr().err


def test_single_image(fresh_model, tmp_path):
    frame, boxes = compose_frame(0, faces=1)
    image = write_image(tmp_path / "one.png", frame)
    assert run(fresh_model, image, "--csv", tmp_path / "e.csv") == 0
    (row,) = read_rows(tmp_path / "e.csv")[1]
    assert iou(tuple(int(row[k]) for k in "xywh"), boxes[0]) > 0.5


def test_no_faces_at_all(fresh_model, tmp_path, capsys, csv_columns):
    blank = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(10):
        writer.write(np.full((240, 320, 3), 100, np.uint8))
    writer.release()
    assert run(fresh_model, blank, "--csv", tmp_path / "e.csv", "--output", tmp_path / "v.avi") == 0
    assert "no faces were found" in capsys.readouterr().out
    fields, rows = read_rows(tmp_path / "e.csv")
    assert fields == csv_columns and rows == []
    assert count_video_frames(tmp_path / "v.avi") == 10


def test_face_half_out_of_frame_is_still_classified(fresh_model, tmp_path):
    frame, boxes = compose_frame(0, faces=1, width=640, height=480)
    x, y, w, h = boxes[0]
    shifted = np.zeros_like(frame)
    shift = x + w // 3  # push the head so a third of the face box leaves on the left
    shifted[:, : frame.shape[1] - shift] = frame[:, shift:]
    image = write_image(tmp_path / "edge.png", shifted)
    assert run(fresh_model, image, "--csv", tmp_path / "e.csv", "--set", "photo_haar.min_neighbors=2") == 0
    rows = read_rows(tmp_path / "e.csv")[1]
    assert all(int(r["x"]) >= 0 and int(r["x"]) + int(r["w"]) <= 640 for r in rows)


@pytest.mark.parametrize("source, message", [
    ("7", "cannot open camera 7: no webcam there, or another program uses it; read a photo or a video instead"),
    ("nowhere.mp4", "not found"),
])
def test_sources_that_cannot_open_give_one_line(fresh_model, capfd, source, message):
    assert run(fresh_model, source) == 2
    err = capfd.readouterr().err  # OpenCV's own log included: its backends warn on the file descriptor
    assert message in err and err.count("\n") == 1, err


def test_undecodable_video_is_one_line(fresh_model, tmp_path, project_root):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    # A process of its own, as a user runs it: FFmpeg's own complaints ("moov atom not found") count too.
    done = subprocess.run([sys.executable, str(project_root / "analyzer.py"), "--source", str(broken), "--model",
                           str(fresh_model), "--no-display", "--csv", str(tmp_path / "e.csv")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 2
    assert "cannot decode video" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "re-encode it" in done.stderr and "converting it to .mp4" not in done.stderr


def test_missing_or_corrupt_model_says_how_to_get_one(fresh_model, face_video, tmp_path, capsys, copy_of):
    assert run(tmp_path / "none.keras", face_video[0]) == 2
    assert "training.py" in capsys.readouterr().err
    corrupt = copy_of(fresh_model)
    shutil.copy(fresh_model.with_suffix(".json"), corrupt.with_suffix(".json"))
    corrupt.write_bytes(corrupt.read_bytes()[:5000])
    assert run(corrupt, face_video[0]) == 2
    err = capsys.readouterr().err
    assert "is not a .keras model (a .keras file is a zip archive)" in err and "Traceback" not in err
    with zipfile.ZipFile(corrupt, "w") as archive:  # a zip, but not a model
        archive.writestr("config.json", "{not json")
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
    # The first command a user runs reads the webcam: without a screen, the advice is a photo or a video.
    assert analyzer.main(["--model", str(fresh_model)]) == 2
    err = capsys.readouterr().err
    assert "the source is a webcam: read a photo or a video instead, `--source FILE --no-display" in err
    assert err.count("\n") == 1


def test_camera_that_stops_mid_run_finishes_cleanly(fresh_model, tmp_path, monkeypatch, capsys, stopping_camera):
    camera = stopping_camera(12)
    from emotion_analyzer.analysis import capture

    monkeypatch.setattr(capture, "open_source", lambda source: ("camera", camera))  # the command opens it
    assert run(fresh_model, "0", "--csv", tmp_path / "e.csv", "--output", tmp_path / "v.avi", "--verbose") == 0
    captured = capsys.readouterr()
    log = captured.out
    assert "stopped delivering frames after 12" in captured.err  # a warning, on stderr
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
        assert run(fresh_model, url, "--csv", tmp_path / "e.csv", "--verbose") == 0
    finally:
        server.shutdown()
        server.server_close()
    captured = capsys.readouterr()
    log = captured.out
    assert f"source: {url} (stream)" in log
    assert "stopped delivering frames after 40" in captured.err  # every frame of the file came over HTTP
    processed = int(re.search(r"^([\d,]+) frames in", log, re.M).group(1))
    assert 1 <= processed <= 40  # a live source hands over only the newest frame
    rows = read_rows(tmp_path / "e.csv")[1]
    assert rows and all(row["source"] == url for row in rows)
    assert len({r["frame"] for r in rows}) == processed  # faces in every frame that was processed


def test_ctrl_c_leaves_complete_csv_and_playable_video(fresh_model, face_video, tmp_path, monkeypatch):
    real_read = analyze_module.Analyzer._read_video_frame
    calls = []

    def interrupt_at_ten(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 11:
            raise KeyboardInterrupt
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(analyze_module.Analyzer, "_read_video_frame", interrupt_at_ten)
    out_csv, out_video = tmp_path / "e.csv", tmp_path / "v.mp4"
    assert run(fresh_model, face_video[0], "--csv", out_csv, "--output", out_video) == 130
    rows = read_rows(out_csv)[1]
    assert len(rows) == 30 and {int(r["frame"]) for r in rows} == set(range(10))
    assert count_video_frames(out_video) == 10


def test_bad_output_name_is_refused_before_anything_is_written(fresh_model, face_video, tmp_path, capsys):
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "e.csv", "--output", tmp_path / "v.gif") == 2
    assert "--output" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("outputs", [
    lambda video, photo, model: ["--source", video, "--output", video, "--max-frames", "3"],
    lambda video, photo, model: ["--source", photo, "--csv", photo],
    lambda video, photo, model: ["--source", video, "--csv", model, "--max-frames", "3"],
    lambda video, photo, model: ["--source", video, "--csv", video.with_name("both.mp4"),
                                 "--output", video.with_name("both.mp4")],
])
def test_an_output_that_is_an_input_or_another_output_is_refused(fresh_model, face_video, tmp_path, capsys,
                                                                  copy_of, outputs):
    video = copy_of(face_video[0])
    photo = write_image(tmp_path / "photo.jpg", compose_frame(0, faces=1)[0])
    model = copy_of(fresh_model)
    copy_of(fresh_model.with_suffix(".json"))
    before = {p: p.read_bytes() for p in (video, photo, model)}
    args = [str(a) for a in outputs(video, photo, model)]
    assert analyzer.main([*args, "--model", str(model), "--no-display"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and ("destroy it" in err or "give each output its own name" in err)
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "both.mp4").exists()


@pytest.mark.parametrize("flag", ["--csv", "--output"])
def test_an_impossible_output_path_is_one_line(fresh_model, face_video, tmp_path, capsys, flag):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    name = "e.csv" if flag == "--csv" else "v.avi"
    assert run(fresh_model, face_video[0], flag, blocker / "sub" / name) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} ") and "is a file, not a folder" in err and "Traceback" not in err


def test_a_video_cut_short_is_reported(fresh_model, tmp_path, capsys):
    whole = tmp_path / "whole.avi"
    write_face_video(whole, frames=30, faces=1)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert run(fresh_model, cut, "--csv", tmp_path / "e.csv", "--verbose") == 0
    captured = capsys.readouterr()
    processed = int(re.search(r"^([\d,]+) frames in", captured.out, re.M).group(1))
    assert processed < 30
    assert f"warning: the video ended after {processed} of the 30 frames its header announces" in captured.err
    assert "ended after" not in captured.out  # a warning goes to stderr, with the errors


def test_a_sideways_phone_photo_is_turned_upright_and_its_face_found(fresh_model, tmp_path):
    from PIL import Image

    frame = cv2.cvtColor(compose_frame(0, faces=1, width=480, height=360)[0], cv2.COLOR_BGR2RGB)
    sideways = Image.fromarray(frame).rotate(90, expand=True)  # stored as a phone held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert run(fresh_model, tmp_path / "phone.jpg", "--csv", tmp_path / "e.csv") == 0
    rows = read_rows(tmp_path / "e.csv")[1]
    assert len(rows) == 1 and int(rows[0]["w"]) > 60


def test_sigterm_ends_a_run_as_ctrl_c_does(fresh_model, tmp_path, project_root):
    signum = signal.SIGTERM  # SIGHUP takes the same handler (test_cli, and the training runs in test_interrupt)
    video = tmp_path / "long.avi"
    write_face_video(video, frames=300, faces=1, width=320, height=240, size=100)  # 10 s, played in real time
    out_csv, out_video = tmp_path / "e.csv", tmp_path / "v.avi"
    process = subprocess.Popen([sys.executable, str(project_root / "analyzer.py"), "--source", str(video), "--model",
                                str(fresh_model), "--no-display", "--realtime", "--csv", str(out_csv),
                                "--output", str(out_video), "--verbose"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert process.stdout.readline().startswith("device:")  # the run has begun
    time.sleep(1.5)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err[-2000:]
    assert f"interrupted ({signal.Signals(signum).name})" in out
    rows = int(re.search(r"wrote ([\d,]+) rows", out).group(1).replace(",", ""))
    frames = int(re.search(r"wrote ([\d,]+) frames", out).group(1).replace(",", ""))
    assert 0 < frames < 300
    assert len(read_rows(out_csv)[1]) == rows
    assert count_video_frames(out_video) == frames
    # The count reported is the frames in the files: a frame is written and counted as one unit.
    assert int(re.search(r"^([\d,]+) frames in", out, re.M).group(1).replace(",", "")) == frames
    assert len({row["frame"] for row in read_rows(out_csv)[1]}) == frames
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_impossible_numbers_are_refused_at_parse_time(fresh_model, capsys):
    with pytest.raises(SystemExit) as stop:
        analyzer.main(["--model", str(fresh_model), "--no-display", "--max-frames", "0"])
    assert stop.value.code == 2
    assert "argument --max-frames: 0: expected" in capsys.readouterr().err


@pytest.mark.parametrize("assignment, message", [
    ("detect_every=0", "detect_every 0: expected at least 1"),
    ("haar.min_size=0", "haar.min_size 0: expected at least 1"),
    ("photo_haar.detect_width=16", "photo_haar.detect_width 16: expected 0 (full resolution) or at least 32"),
    ("haar.scale_factor=1.0", "haar.scale_factor 1.0: expected a number above 1"),
    ("haar.min_neighbors=-1", "haar.min_neighbors -1: expected 0 or more"),
    ("haar.min_neighbors=many", "--set haar.min_neighbors=many: expected a whole number"),
    ("smoothing.margin=2", "margin from 0 to 1"),
    ("engine=gpu", "--set engine=gpu: expected one of auto, tflite-int8, tflite, tf"),
    ("follow=maybe", "--set follow=maybe: expected true or false"),
    ("haar.min_neigbors=3", "--set haar.min_neigbors: no such setting (did you mean haar.min_neighbors,"),
    ("min_neighbors=3", "(did you mean haar.min_neighbors, photo_haar.min_neighbors?)"),
])
def test_a_setting_out_of_range_or_unknown_is_one_line_before_any_work(fresh_model, capsys, assignment, message):
    assert analyzer.main(["--model", str(fresh_model), "--no-display", "--set", assignment]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_settings_are_set_by_name_nested_groups_included(fresh_model):
    from emotion_analyzer.analysis.smoothing import Smoothing
    from emotion_analyzer.commands.analyze import parse_args, settings_from_args
    from emotion_analyzer.core.framing import DEFAULT_FRAMING, Framing

    settings = settings_from_args(parse_args(["--tta", "none", "--set", "haar.min_neighbors=8", "--set",
                                              "photo_haar.fallback=none", "--set", "smoothing=none",
                                              "--set", "framing.margin=0.3", "--set", "follow=no"]))
    assert settings.tta == "none" and settings.haar.min_neighbors == 8 and settings.photo_haar.fallback is None
    assert settings.photo_haar.scale_factor == 1.05  # the rest of the group keeps its own defaults
    assert settings.smoothing is None and settings.follow is False
    assert settings.framing == Framing(0.3, DEFAULT_FRAMING.offset)  # a group that was none starts from its default
    assert settings_from_args(parse_args(["--set", "smoothing=none", "--set", "smoothing.hold=0.5"])).smoothing == \
        Smoothing(hold=0.5)


def test_help_fits_a_screen_and_every_setting_is_listed(capsys):
    import dataclasses

    from emotion_analyzer.analysis.analyzer import AnalyzerSettings

    with pytest.raises(SystemExit):
        analyzer.main(["--help"])
    assert capsys.readouterr().out.count("\n") < 70
    with pytest.raises(SystemExit) as stop:
        analyzer.main(["--set", "help"])
    listed = capsys.readouterr().out
    assert stop.value.code == 0
    for field in dataclasses.fields(AnalyzerSettings):
        assert f"  {field.name}" in listed
    assert "  photo_haar.relative_neighbors=0.2\n" in listed and "  smoothing.hold=0.1\n" in listed


def alternating_readings():
    """A classify() that reads every face as happy on one frame and neutral on the next: a flickering reading."""
    calls = []

    def classify(batch):
        calls.append(1)
        p = np.full((len(batch), 6), 0.02, np.float32)
        p[:, 2 if len(calls) % 2 else 3] = 0.9
        return p
    return classify


@pytest.mark.parametrize("smooth", [True, False])
def test_the_csv_keeps_the_steady_label_the_window_shows(fresh_model, face_video, tmp_path, monkeypatch, smooth):
    real_init = analyze_module.Analyzer.__init__

    def flickering(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.classifier.classify = alternating_readings()

    monkeypatch.setattr(analyze_module.Analyzer, "__init__", flickering)
    extra = [] if smooth else ["--set", "smoothing=none"]
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "e.csv", "--max-frames", "30", *extra) == 0
    rows = read_rows(tmp_path / "e.csv")[1]
    first_face = [row["emotion"] for row in rows if row["face"] == rows[0]["face"]]
    switches = sum(a != b for a, b in zip(first_face, first_face[1:]))
    if smooth:
        assert switches == 0  # the average sits between the two readings; neither leads by the margin
    else:
        assert switches == len(first_face) - 1  # every frame as it comes


def test_photos_are_read_with_mirror_views_and_the_models_framing(fresh_model, tmp_path, capsys, copy_of):
    import json

    model = copy_of(fresh_model)
    info = json.loads(fresh_model.with_suffix(".json").read_text())
    (tmp_path / model.with_suffix(".json").name).write_text(json.dumps({**info, "framing": {"margin": 0.2,
                                                                                            "offset": 0.1}}))
    photo = write_image(tmp_path / "photo.png", compose_frame(0, faces=1)[0])
    assert analyzer.main(["--source", str(photo), "--model", str(model), "--no-display", "--detector", "haar",
                          "--verbose"]) == 0
    log = capsys.readouterr().out
    # The model reads equalized faces (its JSON's input record), so every crop is equalized.
    assert ("faces found by haar; views per face: flip; crop: Framing(margin=0.2, offset=0.1, equalize=True);"
            " smoothing: off") in log
    # Photos are searched with MTCNN by default, whose boxes have their own framing (this JSON predates it).
    assert analyzer.main(["--source", str(photo), "--model", str(model), "--no-display", "--verbose"]) == 0
    assert (f"faces found by mtcnn (Haar where it finds none); views per face: flip; crop:"
            f" {replace(DEFAULT_FRAMINGS['mtcnn'], equalize=True)}") in capsys.readouterr().out
    assert analyzer.main(["--source", str(photo), "--model", str(model), "--no-display", "--set", "framing.margin=0.3",
                          "--verbose"]) == 0
    assert "crop: Framing(margin=0.3, offset=-0.05, equalize=True)" in capsys.readouterr().out


def test_boxes_follow_a_moving_face_between_detections(fresh_model):
    from demo_media import MovingHeads

    from emotion_analyzer.analysis.detect import DetectorSettings, FaceDetector
    from emotion_analyzer.core.images import to_gray_uint8
    from emotion_analyzer.analysis.outputs import RowTable

    from emotion_analyzer.commands.analyze import parse_args, settings_from_args

    assert settings_from_args(parse_args(["--set", "follow=false"])).follow is False
    assert settings_from_args(parse_args([])).follow is True
    overlaps = {}
    for follow in (True, False):
        settings = analyze_module.AnalyzerSettings(model=fresh_model, follow=follow)
        engine = analyze_module.Analyzer(settings, log=lambda *_: None)
        clip = MovingHeads(speed=10, frames=30, heads=1)
        rows = RowTable(engine.labels)
        engine.run("moving heads", analyze_module.RunOutputs(table=rows, display=False, progress=False),
                   opened=("video", clip))
        detector = FaceDetector(DetectorSettings())
        table = rows.to_dataframe()
        # Against where the cascade finds the face in that very frame.
        overlaps[follow] = [max((iou(tuple(row[["x", "y", "w", "h"]]), tuple(box))
                                 for box in detector.detect(to_gray_uint8(clip.frames[row["frame"]]))), default=0)
                            for _, row in table.iterrows()]
        assert len(table) >= 28  # the face in (nearly) every frame
    assert np.mean(overlaps[True]) > 0.85 and min(overlaps[True]) > 0.6
    assert np.mean(overlaps[False]) < 0.7  # held boxes lag a face moving 10 pixels a frame


def test_a_wrong_source_is_refused_before_tensorflow_starts(tmp_path, project_root):
    code = ("import sys; from emotion_analyzer.commands.analyze import main;"
            f" code = main(['--source', {str(tmp_path / 'nowhere.mp4')!r}, '--no-display']);"
            " print(code, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=project_root, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"]
    assert "nowhere.mp4' not found" in done.stderr and done.stderr.count("\n") == 1


def test_a_model_that_reads_another_size_is_refused_in_one_line(tmp_path, face_video, capsys, emotions6):
    import keras

    from emotion_analyzer.core.model import save_model_atomic, save_model_info

    big = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(), keras.layers.Dense(6, "softmax")])
    path = tmp_path / "big.keras"
    save_model_atomic(big, path)
    save_model_info(path, {"labels": emotions6})
    assert run(path, face_video[0]) == 2
    err = capsys.readouterr().err
    assert "takes input of shape (64, 64, 1)" in err and "48x48" in err and err.count("\n") == 1



def test_videos_keep_haar_unless_mtcnn_is_asked_for(fresh_model, face_video, tmp_path, capsys):
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "auto.csv", "--max-frames", "6", "--verbose") == 0
    assert "faces found by haar;" in capsys.readouterr().out
    assert run(fresh_model, face_video[0], "--csv", tmp_path / "mtcnn.csv", "--max-frames", "6",
               "--detector", "mtcnn", "--verbose") == 0
    assert "faces found by mtcnn;" in capsys.readouterr().out
    rows = read_rows(tmp_path / "mtcnn.csv")[1]
    assert len(rows) == 6 * 3  # every face of every frame (three faces)


def test_turned_london_portraits_read_as_the_upright_ones(tmp_path, london_photos):
    from emotion_analyzer import EmotionRecognizer

    photos = london_photos(tmp_path, "happy", 2) + london_photos(tmp_path, "neutral", 2)
    recognizer = EmotionRecognizer()  # the shipped model: an untrained one reads every face alike
    same = total = 0
    for photo in photos:
        image = cv2.imread(str(photo))
        (upright,) = recognizer.detect_emotions(image)
        height, width = image.shape[:2]
        for degrees in (-50, -35, -20, 20, 35, 50):
            matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
            turned = recognizer.detect_emotions(cv2.warpAffine(image, matrix, (width, height),
                                                               borderMode=cv2.BORDER_REFLECT))
            assert len(turned) == 1, f"{photo.name} turned by {degrees} degrees: {len(turned)} faces"
            same += turned[0]["emotion"] == upright["emotion"]
            total += 1
    assert same >= 0.8 * total, f"{same} of {total} turned portraits read as upright"


def test_a_variable_frame_rate_video_keeps_each_frames_own_time(fresh_model, tmp_path):
    from demo_media import write_vfr_video

    # 30 frames at 30 frames/s, then 10 at 5 frames/s: what a phone records when the light drops
    times = [i / 30 for i in range(30)] + [1.0 + i / 5 for i in range(10)]
    video = write_vfr_video(tmp_path / "phone.mp4", times)
    assert run(fresh_model, video, "--csv", tmp_path / "e.csv") == 0
    seen = {int(row["frame"]): float(row["time_s"]) for row in read_rows(tmp_path / "e.csv")[1]}
    assert len(seen) == 40
    for frame, seconds in seen.items():
        assert seconds == pytest.approx(times[frame], abs=0.002), frame  # the CSV keeps milliseconds


def test_file_names_that_are_not_utf8_are_read_and_named_with_escapes(fresh_model, tmp_path, project_root):
    folder = tmp_path / "archive"
    write_image(folder / "photo.jpg", compose_frame(0, faces=1)[0])
    write_face_video(folder / "clip.avi", frames=4, faces=1)
    # Latin-1 names, as an old archive or a Windows share gives them: OpenCV crashed on such a video
    os.rename(folder / "photo.jpg", os.fsencode(folder) + b"/caf\xe9.jpg")
    os.rename(folder / "clip.avi", os.fsencode(folder) + b"/d\xe9mo.avi")
    video = os.fsdecode(os.fsencode(folder) + b"/d\xe9mo.avi")
    runs = {"photos": [folder, tmp_path / "photos.csv"], "video": [video, tmp_path / "video.csv"]}
    for source, csv_path in runs.values():
        done = subprocess.run([sys.executable, str(project_root / "analyzer.py"), "--source", source, "--csv", csv_path,
                               "--model", str(fresh_model), "--no-display"], capture_output=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert done.returncode == 0, done.stderr[-2000:]
    assert {row["source"] for row in read_rows(runs["photos"][1])[1]} == {"caf\\xe9.jpg"}
    rows = read_rows(runs["video"][1])[1]
    assert {row["source"] for row in rows} == {"d\\xe9mo.avi"} and len({row["frame"] for row in rows}) == 4
    refused = subprocess.run([sys.executable, str(project_root / "analyzer.py"), "--source", video, "--output",
                              os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9sultat.avi"), "--model", str(fresh_model),
                              "--no-display"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "r\\xe9sultat.avi: OpenCV cannot write a video whose name is not UTF-8" in refused.stderr
