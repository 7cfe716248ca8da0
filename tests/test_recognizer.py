"""The library API (EmotionRecognizer) against the analyzer command, and the package as pip installs it."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import analyzer
from conftest import EMOTIONS6, ROOT, london_photos, requires_london_faces, write_image
from demo_media import compose_frame, write_face_video
from emotion_analyzer import EmotionRecognizer, UserError
from emotion_analyzer.classify import EmotionClassifier


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


def test_photos_read_by_the_api_and_the_command_give_the_same_faces(recognizer, photos, tmp_path):
    table = analyzer_csv(photos[0].parent, tmp_path)
    faces = recognizer.detect_emotions([cv2.imread(str(path)) for path in photos])
    assert [len(found) for found in faces] == [1, 3]
    for path, found in zip(photos, faces):
        rows = table[table["source"] == path.name]
        assert [face["box"] for face in found] == list(rows[["x", "y", "w", "h"]].itertuples(index=False, name=None))
        api = np.array([[face["emotions"][label] for label in EMOTIONS6] for face in found])
        np.testing.assert_allclose(api, rows[EMOTIONS6].to_numpy(), atol=6e-5)  # the CSV keeps 4 decimals
        assert [face["emotion"] for face in found] == list(rows["emotion"])
        assert all(face["confidence"] == max(face["emotions"].values()) for face in found)
    assert recognizer.detect_emotions(photos[1]) == faces[1]  # a path reads as the decoded array does


def test_a_video_read_by_the_api_and_the_command_gives_the_same_rows(recognizer, tmp_path):
    video = tmp_path / "clip.avi"
    write_face_video(video, frames=24, faces=3)
    expected = analyzer_csv(video, tmp_path)
    table = recognizer.analyze_video(video)
    assert list(table.columns) == list(expected.columns)
    assert len(table) == 24 * 3  # one row per face per frame
    pd.testing.assert_frame_equal(table.drop(columns=EMOTIONS6 + ["time_s"]), expected.drop(columns=EMOTIONS6
                                                                                              + ["time_s"]))
    np.testing.assert_allclose(table[EMOTIONS6].to_numpy(), expected[EMOTIONS6].to_numpy(), atol=6e-5)
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


def test_importing_the_package_loads_nothing_heavy():
    heavy = "sorted(m for m in ('tensorflow', 'keras', 'cv2') if m in sys.modules)"
    code = f"import sys, emotion_analyzer; print({heavy}); emotion_analyzer.EmotionRecognizer; print({heavy})"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
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


@requires_london_faces
def test_the_installed_package_reads_london_faces_and_videos_from_any_folder(tmp_path):
    """In CI's venv, where .ci/run installs the checkout with `pip install .`."""
    scripts = Path(sys.executable).parent
    command = scripts / "emotion-analyzer"
    if not command.is_file():
        pytest.skip(f"the package is not installed in this environment ({sys.prefix}): run `pip install .`"
                    " (.ci/run does)")
    pairs = 3
    smiling, neutral = (london_photos(tmp_path / "london", emotion, pairs) for emotion in ("happy", "neutral"))
    video = tmp_path / "clip.avi"
    write_face_video(video, frames=10, faces=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(INSTALLED_CHECK), str(ROOT), str(video),
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
    assert "--still-scale-factor" in help_text.stdout  # the options of python analyzer.py
