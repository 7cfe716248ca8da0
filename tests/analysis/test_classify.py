"""The classification engines give the Keras model's probabilities (int8 weights: nearly), on real faces."""

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
    classifier = EmotionClassifier(model, info["labels"], engine="tflite")
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
    classifier = EmotionClassifier(model, info["labels"])
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
    got = EmotionClassifier(model, info["labels"], tta="flip", engine=engine).classify(batch)
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
    got = EmotionClassifier(model, info["labels"], tta="shifts", engine=engine).classify(batch)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # A moved face really is a different input: the views do not all agree.
    assert np.ptp([keras_probabilities(model, shifted_view(batch, *v)) for v in views], axis=0).max() > 1e-3


def test_an_unknown_view_set_is_refused_by_name(shipped):
    with pytest.raises(UserError, match="test-time augmentation 'crops'"):
        EmotionClassifier(shipped[0], shipped[1]["labels"], tta="crops")


def test_tensorflow_engine_pads_to_buckets_and_trims(shipped):
    from emotion_analyzer.analysis.classify import TensorFlowEngine
    from emotion_analyzer.core.views import probability_function

    model, info = shipped
    classifier = EmotionClassifier(model, info["labels"], engine="tf")
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
    assert EmotionClassifier(model, info["labels"]).classify(empty).shape == (0, len(info["labels"]))


def test_unknown_engine_is_refused(shipped):
    model, info = shipped
    with pytest.raises(UserError, match="engine gpu: expected one of auto, tflite-int8, tflite, tf"):
        EmotionClassifier(model, info["labels"], engine="gpu")
