"""The library API (EmotionRecognizer) against the analyzer command, and the package as pip installs it."""

import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import analyzer
from demo_media import write_image
from demo_media import compose_frame, write_face_video
from emotion_analyzer import EmotionRecognizer, UserError
from emotion_analyzer.analysis.classify import EmotionClassifier


@pytest.fixture(scope="module")
def recognizer():
    return EmotionRecognizer()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for faces in (1, 3):
        write_image(folder / f"{faces}_faces.png", compose_frame(faces, faces=faces)[0])
    return sorted(folder.glob("*.png"))


def analyzer_csv(source, tmp_path, *extra):
    out = tmp_path / "faces.csv"
    assert analyzer.main(["--source", str(source), "--csv", str(out), "--no-display", *extra]) == 0
    return pd.read_csv(out)


def test_photos_read_by_the_api_and_the_command_give_the_same_faces(recognizer, photos, tmp_path, emotions6):
    table = analyzer_csv(photos[0].parent, tmp_path)
    faces = recognizer.detect_emotions([cv2.imread(str(path)) for path in photos])
    assert [len(found) for found in faces] == [1, 3]
    for path, found in zip(photos, faces):
        rows = table[table["source"] == path.name]
        assert [face["box"] for face in found] == list(rows[["x", "y", "w", "h"]].itertuples(index=False, name=None))
        api = np.array([[face["emotions"][label] for label in emotions6] for face in found])
        np.testing.assert_allclose(api, rows[emotions6].to_numpy(), atol=6e-5)  # the CSV keeps 4 decimals
        assert [face["emotion"] for face in found] == list(rows["emotion"])
        assert all(face["confidence"] == max(face["emotions"].values()) for face in found)
    assert recognizer.detect_emotions(photos[1]) == faces[1]  # a path reads as the decoded array does


def test_a_video_read_by_the_api_and_the_command_gives_the_same_rows(recognizer, tmp_path, emotions6):
    video = tmp_path / "clip.avi"
    write_face_video(video, frames=24, faces=3)
    expected = analyzer_csv(video, tmp_path)
    table = recognizer.analyze_video(video)
    assert list(table.columns) == list(expected.columns)
    assert len(table) == 24 * 3  # one row per face per frame
    pd.testing.assert_frame_equal(table.drop(columns=emotions6 + ["time_s"]), expected.drop(columns=emotions6
                                                                                              + ["time_s"]))
    np.testing.assert_allclose(table[emotions6].to_numpy(), expected[emotions6].to_numpy(), atol=6e-5)
    assert recognizer.analyze_video(video, max_frames=5)["frame"].max() == 4  # a second run starts afresh


def test_the_faces_of_a_batch_of_photos_are_classified_in_one_call(recognizer, photos, monkeypatch):
    batches = []
    real_classify = EmotionClassifier.classify

    def counted(self, batch):
        batches.append(len(batch))
        return real_classify(self, batch)

    monkeypatch.setattr(EmotionClassifier, "classify", counted)
    faces = recognizer.detect_emotions(photos + photos)
    assert batches == [8] and [len(found) for found in faces] == [1, 3, 1, 3]


def test_bad_input_raises_the_error_the_command_prints(recognizer, photos, tmp_path):
    with pytest.raises(UserError, match="missing.jpg: no such image file"):
        recognizer.detect_emotions(tmp_path / "missing.jpg")
    broken = tmp_path / "broken.png"
    broken.write_bytes(photos[0].read_bytes()[:100])
    with pytest.raises(UserError, match="broken.png: truncated PNG"):
        recognizer.detect_emotions(broken)
    with pytest.raises(UserError, match="got ndarray of shape"):
        recognizer.detect_emotions(np.array(["not", "an", "image"]))
    with pytest.raises(UserError, match="missing.mp4' not found: pass"):
        recognizer.analyze_video(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(UserError, match="junk.mp4"):
        recognizer.analyze_video(tmp_path / "junk.mp4")
    with pytest.raises(TypeError, match="csv"):
        EmotionRecognizer(csv="faces.csv")  # a setting of the command, not of the library


def test_importing_the_package_loads_nothing_heavy(project_root):
    heavy = "sorted(m for m in ('tensorflow', 'keras', 'cv2') if m in sys.modules)"
    code = f"import sys, emotion_analyzer; print({heavy}); emotion_analyzer.EmotionRecognizer; print({heavy})"
    result = subprocess.run([sys.executable, "-c", code], cwd=project_root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The scripts import the package: nothing. The API's class: OpenCV; TensorFlow waits for a recognizer.
    assert result.stdout.splitlines() == ["[]", "['cv2']"]


INSTALLED_CHECK = """
import sys
from pathlib import Path

import emotion_analyzer
from emotion_analyzer import EmotionRecognizer

checkout, video = Path(sys.argv[1]), sys.argv[2]
package = Path(emotion_analyzer.__file__).resolve().parent
if package == checkout / "emotion_analyzer":  # (CI's venv itself may sit inside the checkout)
    sys.exit(f"imported the checkout's package ({package}), not the installed one")
recognizer = EmotionRecognizer()
for photo in sys.argv[3:]:
    faces = recognizer.detect_emotions(photo)
    print(Path(photo).parent.name, len(faces), faces[0]["emotions"]["happy"] if faces else "")
table = recognizer.analyze_video(video)
print("rows", len(table), table["frame"].nunique())
"""


def installed_editable():
    """Whether this environment's own install of the package (in its site-packages, not the checkout's
    egg-info that the tests' path also finds) is editable, which imports the checkout itself."""
    for dist in importlib.metadata.distributions(name="emotion-analyzer", path=[sysconfig.get_paths()["purelib"]]):
        return json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable", False)
    return False


def test_the_installed_package_reads_london_faces_and_videos_from_any_folder(tmp_path, project_root, london_photos):
    """In CI's venv, where .ci/run installs the checkout with `pip install .`."""
    scripts = Path(sys.executable).parent
    command = scripts / "emotion-analyzer"
    if not command.is_file():
        pytest.skip(f"the package is not installed in this environment ({sys.prefix}): run `pip install .`"
                    " (.ci/run does)")
    if installed_editable():
        pytest.skip("the package is installed editable (pip install -e .), so it imports the checkout: this test"
                    " checks a copy as `pip install .` makes it (.ci/run does)")
    pairs = 3
    smiling, neutral = (london_photos(tmp_path / "london", emotion, pairs) for emotion in ("happy", "neutral"))
    video = tmp_path / "clip.avi"
    write_face_video(video, frames=10, faces=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(INSTALLED_CHECK), str(project_root), str(video),
                             *map(str, smiling + neutral)], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [count for _, count, _ in lines[:-1]] == ["1"] * (2 * pairs)  # one face in each portrait
    happy = [float(probability) for _, _, probability in lines[:-1]]
    # Each person's smile reads happier than the same person neutral (the photos are in the same order).
    assert all(smile > calm for smile, calm in zip(happy[:pairs], happy[pairs:]))
    assert lines[-1] == ["rows", "20", "10"]  # one row per face per frame
    help_text = subprocess.run([str(command), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert help_text.returncode == 0 and "usage: emotion-analyzer" in help_text.stdout
    assert "--set NAME=VALUE" in help_text.stdout and "--csv-dir" in help_text.stdout  # python analyzer.py's options


def test_one_recognizer_shared_by_threads_gives_each_its_own_answers(recognizer, tmp_path):
    one, three = compose_frame(0, faces=1)[0], compose_frame(7, faces=3)[0]
    video = tmp_path / "clip.avi"
    write_face_video(video, frames=12, faces=2)
    serial = {"one": recognizer.detect_emotions(one), "three": recognizer.detect_emotions(three),
              "video": recognizer.analyze_video(video)}
    answers = {name: [] for name in serial}

    def ask(name, image):
        for _ in range(8):
            answers[name].append(recognizer.analyze_video(video) if name == "video"
                                 else recognizer.detect_emotions(image))
    threads = [threading.Thread(target=ask, args=args) for args in
               (("one", one), ("three", three), ("one", one), ("video", None))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers["one"]) == 16 and len(answers["three"]) == 8 and len(answers["video"]) == 8
    for name in ("one", "three"):
        for faces in answers[name]:
            assert [face["box"] for face in faces] == [face["box"] for face in serial[name]]
            for face, expected in zip(faces, serial[name]):
                assert face["emotions"] == pytest.approx(expected["emotions"], abs=1e-6)
    for table in answers["video"]:
        pd.testing.assert_frame_equal(table, serial["video"])


def test_an_interrupted_video_keeps_the_rows_read_and_the_signal(recognizer, tmp_path, monkeypatch):
    import signal

    from emotion_analyzer import AnalysisStopped
    from emotion_analyzer.analysis.outputs import RowTable

    video = tmp_path / "clip.avi"
    write_face_video(video, frames=40, faces=3)
    real_write = RowTable.write

    def stop_after_thirty_rows(self, *face):
        real_write(self, *face)
        if self.rows == 30:  # the tenth frame's last face: Ctrl-C arrives while it is written
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(RowTable, "write", stop_after_thirty_rows)
    with pytest.raises(AnalysisStopped) as stopped:
        recognizer.analyze_video(video)
    assert isinstance(stopped.value, KeyboardInterrupt) and stopped.value.signum == signal.SIGINT
    rows = stopped.value.rows
    assert len(rows) == 30 and sorted(rows["frame"].unique()) == list(range(10))  # whole frames, all kept


def test_a_video_cut_short_gives_its_rows_a_warning_and_a_marker(recognizer, tmp_path):
    video = tmp_path / "clip.avi"
    write_face_video(video, frames=60, faces=1)
    whole = recognizer.analyze_video(video)
    assert whole.attrs["ended_early"] is None and len(whole) == 60
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.warns(RuntimeWarning, match="ended after .* of the 60 frames"):
        cut = recognizer.analyze_video(video)
    assert "cut short" in cut.attrs["ended_early"] and 0 < len(cut) < 60


@pytest.mark.parametrize("max_frames", [2.5, "10", 0, True])
def test_max_frames_must_be_a_whole_number(recognizer, tmp_path, max_frames):
    with pytest.raises(UserError, match="max_frames .*: expected a whole number"):
        recognizer.analyze_video(tmp_path / "any.avi", max_frames=max_frames)


@pytest.mark.parametrize("pixels, reason", [
    (np.zeros((64, 64), bool), "pixels of type bool"),
    (np.zeros((64, 64), np.float16), "pixels of type float16"),
    (np.zeros((64, 64), np.complex64), "pixels of type complex64"),
    (np.zeros((64, 64), object), "pixels of type object"),
])
def test_arrays_of_other_pixel_types_are_refused_in_one_line(recognizer, pixels, reason):
    with pytest.raises(UserError, match=reason):
        recognizer.detect_emotions(pixels)


def test_a_float_image_with_a_nan_pixel_is_refused_and_one_without_is_read(recognizer):
    photo = compose_frame(0, faces=1)[0]
    floating = photo.astype(np.float32) / 255
    as_float, as_uint8 = recognizer.detect_emotions(floating), recognizer.detect_emotions(photo)
    assert len(as_float) == len(as_uint8) == 1
    assert np.abs(np.subtract(as_float[0]["box"], as_uint8[0]["box"])).max() <= 2  # within a grey level's rounding
    floating[5, 5, 0] = np.nan
    with pytest.raises(UserError, match="NaN or infinite"):
        recognizer.detect_emotions(floating)


def test_twelve_bit_data_in_sixteen_bits_reads_as_the_eight_bit_photo(recognizer):
    photo = compose_frame(0, faces=3)[0]
    twelve_bit = photo.astype(np.uint16) << 4  # 0-4080, as a 12-bit camera stores it
    assert recognizer.detect_emotions(twelve_bit) == recognizer.detect_emotions(photo)


def test_a_huge_photo_is_searched_at_a_bounded_size_and_finds_its_one_face(recognizer):
    photo, boxes = compose_frame(0, faces=1)
    huge = cv2.resize(photo, None, fx=10, fy=10, interpolation=cv2.INTER_LINEAR)  # 6400 x 4800
    small, large = recognizer.detect_emotions(photo), recognizer.detect_emotions(huge)
    assert len(small) == 1 and len(large) == 1
    assert np.allclose(np.array(large[0]["box"]) / 10, small[0]["box"], atol=6)
