"""The classification engines give the Keras model's probabilities (int8 weights: nearly), on real faces."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emotion_analyzer import config
from emotion_analyzer.analysis.classify import EmotionClassifier
from demo_media import astronaut_face
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.images import to_model_input
from emotion_analyzer.core.model import load_trained_model


@pytest.fixture(scope="module")
def shipped():
    return load_trained_model(config.DEFAULT_MODEL_PATH)


def face_batch(n):
    """n different 48x48 crops of a real face: shifted, scaled, mirrored and darkened versions."""
    gray = cv2.cvtColor(astronaut_face(200), cv2.COLOR_BGR2GRAY)
    crops = []
    for i in range(n):
        margin = 4 * (i % 5)
        crop = gray[margin:200 - margin, 2 * i:200 - 2 * (i % 3)]
        if i % 2:
            crop = crop[:, ::-1]
        crops.append(to_model_input((crop * (1 - 0.05 * (i % 4))).astype(np.uint8)))
    return np.stack(crops)[..., np.newaxis]


def keras_probabilities(model, batch):
    return model.predict(batch.astype(np.float32), verbose=0)


def test_float_tflite_matches_keras(shipped):
    model, info = shipped
    classifier = EmotionClassifier(config.DEFAULT_MODEL_PATH, info["labels"], engine="tflite")
    assert classifier.engine_name.startswith("TensorFlow Lite (")
    classifier.warm_up()
    for n in (1, 3, 2, 7, 3):  # growing and shrinking batches reuse one interpreter
        batch = face_batch(n)
        got = classifier.classify(batch)
        assert got.shape == (n, len(info["labels"]))
        np.testing.assert_allclose(got, keras_probabilities(model, batch), atol=1e-5)
        np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)


def test_default_engine_on_the_cpu_is_tflite_with_int8_weights_and_reads_as_keras(shipped):
    from emotion_analyzer.analysis.classify import to_tflite
    from emotion_analyzer.core.views import probability_function

    model, info = shipped
    classifier = EmotionClassifier(config.DEFAULT_MODEL_PATH, info["labels"])
    assert classifier.engine_name.startswith("TensorFlow Lite, int8 weights")
    # The weights really are int8: a quarter of float32's bytes (the 6.5M weights dominate the file).
    probabilities = probability_function(model)
    assert len(to_tflite(model, probabilities, int8_weights=True)) < len(to_tflite(model, probabilities)) / 3
    batch = face_batch(12)
    got, expected = classifier.classify(batch), keras_probabilities(model, batch)
    # Rounded weights move each probability a little (at most 0.02 over FER2013's 7,067 test faces,
    # docs/benchmarks.md), never the reading of these faces.
    np.testing.assert_allclose(got, expected, atol=0.05)
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


@pytest.mark.parametrize("engine", ["tflite", "tf"])
def test_flip_averaging_is_inside_the_call(shipped, engine):
    model, info = shipped
    batch = face_batch(4)
    expected = (keras_probabilities(model, batch) + keras_probabilities(model, batch[:, :, ::-1].copy())) / 2
    got = EmotionClassifier(config.DEFAULT_MODEL_PATH, info["labels"], tta="flip", engine=engine).classify(batch)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def shifted_view(batch, dx, dy, mirrored, pad=2):
    """The view by hand: reflect-pad, cut the 48x48 window moved by (dx, dy), mirror if asked."""
    padded = np.pad(batch, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    view = padded[:, pad + dy:pad + dy + 48, pad + dx:pad + dx + 48]
    return view[:, :, ::-1].copy() if mirrored else view


@pytest.mark.parametrize("engine", ["tflite", "tf"])
def test_shift_views_average_ten_hand_made_views(shipped, engine):
    model, info = shipped
    batch = face_batch(3)
    views = [(dx, dy, m) for m in (False, True) for dx, dy in ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))]
    expected = np.mean([keras_probabilities(model, shifted_view(batch, *v)) for v in views], axis=0)
    got = EmotionClassifier(config.DEFAULT_MODEL_PATH, info["labels"], tta="shifts", engine=engine).classify(batch)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # A moved face really is a different input: the views do not all agree.
    assert np.ptp([keras_probabilities(model, shifted_view(batch, *v)) for v in views], axis=0).max() > 1e-3


def test_an_unknown_view_set_is_refused_by_name(shipped):
    with pytest.raises(UserError, match="test-time augmentation 'crops'"):
        EmotionClassifier(config.DEFAULT_MODEL_PATH, shipped[1]["labels"], tta="crops")


def test_tensorflow_engine_pads_to_buckets_and_trims(shipped):
    from emotion_analyzer.analysis.classify import TensorFlowEngine
    from emotion_analyzer.core.views import probability_function

    model, info = shipped
    classifier = EmotionClassifier(config.DEFAULT_MODEL_PATH, info["labels"], engine="tf")
    assert classifier.engine_name == "TensorFlow"
    batch = face_batch(5)
    np.testing.assert_allclose(classifier.classify(batch), keras_probabilities(model, batch), atol=1e-5)
    seen = []
    real = probability_function(model)

    def recording(padded):
        seen.append(padded.copy())
        return real(padded)
    out = TensorFlowEngine(recording)(batch)
    assert [len(b) for b in seen] == [6]  # padded to the next bucket, so no new trace for 5 faces
    assert np.array_equal(seen[0][:5], batch) and not seen[0][5:].any()
    assert out.shape == (5, len(info["labels"]))
    np.testing.assert_allclose(out, keras_probabilities(model, batch), atol=1e-5)


def test_no_faces_gives_an_empty_result(shipped):
    model, info = shipped
    empty = np.zeros((0, 48, 48, 1), np.uint8)
    assert EmotionClassifier(config.DEFAULT_MODEL_PATH, info["labels"]).classify(empty).shape == (0, len(info["labels"]))


def test_unknown_engine_is_refused(shipped):
    model, info = shipped
    with pytest.raises(UserError, match="engine gpu: expected one of auto, tflite-int8, tflite, tf"):
        EmotionClassifier(config.DEFAULT_MODEL_PATH, info["labels"], engine="gpu")


# A run of the analyzer as a user starts it, in a process of its own: its exit code, then whether it
# imported TensorFlow.
RUN_AND_SAY_IF_TENSORFLOW_STARTED = ("import sys; from emotion_analyzer.commands.analyze import main;"
                                     " code = main(sys.argv[1:]); print(code, 'tensorflow' in sys.modules)")


def start_analyzer(project_root, cache, *args):
    return subprocess.Popen([sys.executable, "-c", RUN_AND_SAY_IF_TENSORFLOW_STARTED, *map(str, args)],
                            cwd=project_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EMOTION_ANALYZER_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"})


def finished(process):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    return out.split()[-2:]


def test_a_second_start_reads_a_video_with_the_cached_engine_and_no_tensorflow(fresh_model, tmp_path,
                                                                             project_root):
    from demo_media import write_face_video

    video = tmp_path / "clip.avi"
    write_face_video(video, frames=5)
    cache = tmp_path / "cache"
    runs = []
    for name in ("first.csv", "second.csv"):
        runs.append(finished(start_analyzer(project_root, cache, "--source", video, "--model", fresh_model,
                                            "--no-display", "--csv", tmp_path / name)))
        if name == "first.csv":
            (copy,) = cache.iterdir()
            converted = copy.stat().st_mtime_ns
    assert runs == [["0", "True"], ["0", "False"]]  # the first converts the model, the second reads its copy
    assert copy.stat().st_mtime_ns == converted and list(cache.iterdir()) == [copy]
    assert (tmp_path / "first.csv").read_text() == (tmp_path / "second.csv").read_text()


def test_two_starts_converting_at_once_leave_one_whole_copy(fresh_model, tmp_path, project_root):
    from demo_media import write_face_video

    video = tmp_path / "clip.avi"
    write_face_video(video, frames=3)
    cache = tmp_path / "cache"
    both = [start_analyzer(project_root, cache, "--source", video, "--model", fresh_model, "--no-display",
                           "--csv", tmp_path / f"{i}.csv") for i in range(2)]
    assert [finished(process)[0] for process in both] == ["0", "0"]
    assert [path.suffix for path in cache.iterdir()] == [".tflite"]  # no temporary file left
    assert (tmp_path / "0.csv").read_text() == (tmp_path / "1.csv").read_text()
    assert finished(start_analyzer(project_root, cache, "--source", video, "--model", fresh_model,
                                   "--no-display")) == ["0", "False"]  # the copy they left is whole


def test_a_damaged_cached_copy_is_converted_again_and_replaced(fresh_model, emotions6, monkeypatch, tmp_path):
    from emotion_analyzer.analysis import engine_cache

    monkeypatch.setenv(engine_cache.CACHE_ENV, str(tmp_path))
    copy = engine_cache.cached_copy_path(fresh_model, "none", int8_weights=True)
    copy.write_bytes(b"half a flatbuffer")
    said = []
    classifier = EmotionClassifier(fresh_model, emotions6, tta="none", log=said.append)
    assert classifier.classify(face_batch(3)).shape == (3, 6)
    assert "cannot be read" in said[0] and copy.read_bytes() != b"half a flatbuffer"
    assert EmotionClassifier(fresh_model, emotions6, tta="none", log=said.append) and len(said) == 1


def test_another_model_or_view_set_gets_a_copy_of_its_own(fresh_model, copy_of, tmp_path):
    from emotion_analyzer.analysis.engine_cache import cached_copy_path

    retrained = copy_of(fresh_model)
    with open(retrained, "ab") as handle:
        handle.write(b"\0")  # other bytes: another model
    paths = {cached_copy_path(fresh_model, "none", True), cached_copy_path(fresh_model, "flip", True),
             cached_copy_path(fresh_model, "none", False), cached_copy_path(retrained, "none", True)}
    assert len(paths) == 4


@pytest.mark.parametrize("source, message", [("57", "cannot open camera 57"), ("notes.mp4", "cannot decode video"),
                                             ("empty", "no images in")])
def test_a_source_that_cannot_be_read_is_said_before_tensorflow_starts(fresh_model, tmp_path, project_root,
                                                                      source, message):
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "empty").mkdir()
    named = source if source.isdigit() else tmp_path / source
    process = start_analyzer(project_root, tmp_path / "cache", "--source", named, "--model", fresh_model,
                             "--no-display")
    out, err = process.communicate(timeout=120)
    assert out.split() == ["2", "False"] and message in err and err.count("\n") == 1, err
