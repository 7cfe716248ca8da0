"""The real FER2013 6-class dataset from ../shared/datasets/ (or $EMOTION_ANALYZER_DATASETS): clean and prep
end to end, and the shipped model on it."""

import contextlib
import io
import tarfile

import numpy as np
import pytest

import clean_data
import prep_data
from emotion_analyzer import config
from emotion_analyzer.data.prepared import load_prepared

TRAIN = {"angry": 3995, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830, "surprise": 3171}
TEST = {"angry": 958, "fear": 1024, "happy": 1774, "neutral": 1233, "sad": 1247, "surprise": 831}


@pytest.fixture(scope="module")
def real_data(tmp_path_factory, fer2013_archive):
    """The real dataset cleaned and prepared by our scripts: (data folder, what prep printed)."""
    root = tmp_path_factory.mktemp("real")
    with tarfile.open(fer2013_archive) as archive:
        archive.extractall(root / "raw", filter="data")
    out = root / "data"
    assert clean_data.main(["--source", str(root / "raw" / "fer2013-6class"), "--out", str(out),
                            "--chart", str(root / "c.png")]) == 0
    report = io.StringIO()  # capsys is per test; this fixture is shared by the module
    with contextlib.redirect_stdout(report):
        assert prep_data.main(["--data", str(out)]) == 0
    return out, report.getvalue()


def test_real_dataset_clean_and_prep_give_the_published_counts(real_data):
    out, report = real_data
    x, y, x_test, y_test, categories, leak = load_prepared(out)
    assert categories == list(TRAIN)
    assert x.shape == (28273, 48, 48, 1) and x.dtype == np.uint8
    assert x_test.shape == (7067, 48, 48, 1) and x_test.dtype == np.uint8
    assert dict(zip(categories, np.bincount(y).tolist())) == TRAIN
    assert dict(zip(categories, np.bincount(y_test).tolist())) == TEST
    assert int(leak.sum()) == 537
    assert "twin in train (leak): 537" in report
    assert "blank images (one flat grey level): 11 train, 1 test" in report


def test_shipped_model_scores_what_its_json_claims_on_the_real_test_set(real_data):
    """The README's figures come from res/emotion_model.json: recompute the one-view accuracy from the JPEGs."""
    from emotion_analyzer.core.model import as_the_model_reads, load_trained_model
    from emotion_analyzer.training.evaluate import predict_with_views

    model, info = load_trained_model(config.DEFAULT_MODEL_PATH)
    _, _, x_test, y_test, categories, _ = load_prepared(real_data[0])
    assert info["labels"] == categories
    faces = as_the_model_reads(x_test, info)  # as its JSON says it reads, as it was trained and tested
    accuracy = float((predict_with_views(model, faces.astype("float32"), "none").argmax(axis=1) == y_test).mean())
    claimed = info["test_metrics"]["accuracy_by_tta"]["none"]
    assert accuracy == pytest.approx(claimed, abs=0.002)  # 14 images: room for another CPU's rounding
    assert accuracy > 0.569  # the original project's result


def test_the_default_cpu_engine_reads_the_real_test_set_as_the_float_model_does(real_data):
    """int8 weights (the analyzer's engine on a CPU) against float32 TensorFlow Lite, one view, on every
    other test face (3,534: the engines' agreement, at a fraction of the time of all views of all faces)."""
    from emotion_analyzer.analysis.classify import EmotionClassifier
    from emotion_analyzer.core.model import check_model_file

    _, info = check_model_file(config.DEFAULT_MODEL_PATH)
    _, _, x_test, y_test, _, _ = load_prepared(real_data[0])
    x_test, y_test = x_test[::2], y_test[::2]
    top = {}
    for engine in ("tflite-int8", "tflite"):
        classifier = EmotionClassifier(config.DEFAULT_MODEL_PATH, info["labels"], tta="none", engine=engine)
        top[engine] = np.concatenate([classifier.classify(x_test[i:i + 256])
                                      for i in range(0, len(x_test), 256)]).argmax(axis=1)
    assert (top["tflite-int8"] == top["tflite"]).mean() > 0.99
    accuracy = {engine: (predicted == y_test).mean() for engine, predicted in top.items()}
    assert accuracy["tflite-int8"] == pytest.approx(accuracy["tflite"], abs=0.003)
