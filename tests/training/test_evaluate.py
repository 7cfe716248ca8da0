import numpy as np
import pytest

from emotion_analyzer.training.evaluate import classification_metrics, read_history


def test_metrics_on_a_known_confusion():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"], leak_mask=np.array([0, 1, 0, 0, 0, 0], bool))
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["a"]["recall"] == pytest.approx(0.5)
    assert metrics["accuracy_without_train_twins"] == pytest.approx(4 / 5)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_history_drops_columns_that_are_never_measured(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,loss,val_accuracy\n0,0.5,1.2,NA\n1,0.6,1.0,NA\n")
    assert read_history(path) == {"accuracy": [0.5, 0.6], "loss": [1.2, 1.0]}


def test_views_are_read_in_calls_of_bounded_size_with_the_answers_of_one_call(monkeypatch):
    from emotion_analyzer.core import views
    from emotion_analyzer.training import evaluate

    real = views.probability_function
    sizes = []

    def counting(model, tta):
        function = real(model, tta)

        def call(images):
            sizes.append(len(images) * len(views.TTA_VIEWS[tta]))
            return function(images)
        return call

    from emotion_analyzer.core.model import build_model

    model = build_model((48, 48, 1), 6)
    faces = np.random.default_rng(0).integers(0, 256, (300, 48, 48, 1), dtype=np.uint8)
    whole = np.asarray(real(model, "shifts")(faces))
    monkeypatch.setattr(views, "probability_function", counting)

    class Bar:
        n = 0

        def update(self, count):
            Bar.n += count

    read = evaluate.predict_with_views(model, faces, "shifts", bar=Bar())
    assert max(sizes) <= evaluate.IMAGES_PER_CALL and sum(sizes) == 300 * 10 == Bar.n
    np.testing.assert_allclose(read, whole, atol=1e-5)
