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
