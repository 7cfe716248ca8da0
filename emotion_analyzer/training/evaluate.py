"""Evaluation and its evidence: test metrics with test-time views, per-class table, plots."""

import csv
from pathlib import Path

import numpy as np

from emotion_analyzer.common.stops import raise_if_stopped
from emotion_analyzer.common.cli import progress
from emotion_analyzer.common.fileio import write_json_atomic, write_text_atomic


# Images the network reads per call, views included: the 10 views of a batch of 256 faces in one call
# held 5 GB of activations at evaluation (docs/benchmarks.md, "Training's memory").
IMAGES_PER_CALL = 256


def predict_with_views(model, images, tta, bar=None):
    """Probabilities averaged over the `tta` views, by the same function the analyzer classifies with;
    `bar` (a progress bar) counts the faces read, each view once."""
    from emotion_analyzer.core.views import probability_function, TTA_VIEWS

    probabilities = probability_function(model, tta)
    batch_size = max(1, IMAGES_PER_CALL // len(TTA_VIEWS[tta]))
    batches = []
    for start in range(0, len(images), batch_size):
        batches.append(np.asarray(probabilities(images[start:start + batch_size])))
        if bar is not None:
            bar.update(len(batches[-1]) * len(TTA_VIEWS[tta]))
        raise_if_stopped()
    return np.concatenate(batches)


def evaluate(model, x_test, y_test, categories, leak, tta, votes=None):
    """Test metrics of `model` with the `tta` views, and the accuracy with each smaller set of views;
    judged by the crowd too (`crowd`: one view, as the analyzer reads a face, and by views) when the
    test faces have the crowd's `votes`."""
    from emotion_analyzer.core.views import TTA_VIEWS, tta_name

    tta = tta_name(tta)
    view_sets = list(TTA_VIEWS)[:list(TTA_VIEWS).index(tta) + 1]
    answers = {}
    # the test set is read once per view of each set (1 + 2 + 10 times for shifts): the bar counts faces
    with progress(total=len(x_test) * sum(len(TTA_VIEWS[name]) for name in view_sets), desc="evaluating",
                  unit="face") as bar:
        for name in view_sets:
            answers[name] = predict_with_views(model, x_test, name, bar=bar).argmax(axis=1)
    metrics = classification_metrics(y_test, answers[tta], categories, leak)
    metrics["tta"] = tta
    metrics["accuracy_by_tta"] = {name: float((answer == y_test).mean()) for name, answer in answers.items()}
    if votes is not None:
        metrics["crowd"] = crowd_metrics(answers["none"], votes, categories)
        metrics["crowd"]["accuracy_by_tta"] = {name: crowd_metrics(answer, votes, categories)["accuracy"]
                                               for name, answer in answers.items()}
    return metrics


def crowd_metrics(y_pred, votes, categories):
    """The answers judged by the crowd, on the faces with usable votes: agreement with the crowd's
    majority (its most-voted emotion, any of them where several tie: most_voted), per class and as a
    confusion matrix, and the crowd's mean share of votes on the answer."""
    from emotion_analyzer.data.prepared import crowd_distribution

    shares, usable = crowd_distribution(votes, categories)
    shares, y_pred = shares[usable], np.asarray(y_pred)[usable]
    metrics = classification_metrics(most_voted(shares, y_pred), y_pred, categories)
    metrics["mean_share_on_answer"] = float(shares[np.arange(len(y_pred)), y_pred].mean()) if len(y_pred) else 0.0
    metrics["faces_without_usable_votes"] = int((~usable).sum())
    metrics["faces_with_tied_votes"] = int(((shares == shares.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum())
    return metrics


def most_voted(shares, y_pred):
    """Each face's most-voted emotion. Where emotions tie for the most votes the crowd has no one
    majority, and an answer naming any of them agrees with it as much as another would: the face
    counts as that answer's emotion, and as the first of the tied ones when the answer is none of them."""
    rows = np.arange(len(y_pred))
    named_a_top_one = shares[rows, y_pred] == shares.max(axis=1)  # shares of the same votes: ties are exact
    return np.where(named_a_top_one, y_pred, shares.argmax(axis=1))


def confusion_matrix(y_true, y_pred, num_classes):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_metrics(y_true, y_pred, labels, leak_mask=None):
    """Accuracy, macro F1, per-class precision/recall/F1/support, and accuracy without leaked images."""
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    true_positive = np.diag(matrix).astype(float)
    precision = true_positive / np.maximum(matrix.sum(axis=0), 1)
    recall = true_positive / np.maximum(matrix.sum(axis=1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    metrics = {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, matrix.sum(axis=1))},
        "confusion_matrix": matrix.tolist(),
        "test_images": int(len(y_true)),
    }
    if leak_mask is not None and len(leak_mask) == len(y_true):
        clean = ~np.asarray(leak_mask, bool)
        metrics["accuracy_without_train_twins"] = float((y_true[clean] == y_pred[clean]).mean())
        metrics["test_images_with_train_twin"] = int((~clean).sum())
    return metrics


def format_metrics(metrics):
    lines = [f"test accuracy {metrics['accuracy']:.4f} on {metrics['test_images']:,} images;"
             f" macro F1 {metrics['macro_f1']:.4f}"]
    crowd = metrics.get("crowd")
    if crowd:
        lines.append(f"against the crowd's majority, one view: {crowd['accuracy']:.4f} on the {crowd['test_images']:,}"
                     f" faces with usable votes (the crowd's mean share on the answer {crowd['mean_share_on_answer']:.4f});"
                     " by test-time views: " + ", ".join(f"{name} {value:.4f}"
                                                         for name, value in crowd["accuracy_by_tta"].items()))
    by_tta = metrics.get("accuracy_by_tta", {})
    if len(by_tta) > 1:
        lines.append("by test-time views: " + ", ".join(f"{name} {accuracy:.4f}" for name, accuracy in by_tta.items()))
    if "accuracy_without_train_twins" in metrics:
        lines.append(f"accuracy on the {metrics['test_images'] - metrics['test_images_with_train_twin']:,} test images"
                     f" with no identical twin in training: {metrics['accuracy_without_train_twins']:.4f}")
    lines += per_class_lines(metrics, "FER2013's labels")
    if crowd:
        lines += per_class_lines(crowd, "the crowd's majority, one view")
    return lines


def per_class_lines(metrics, judge):
    lines = [f"{'emotion':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}   against {judge}"]
    for label, row in metrics["per_class"].items():
        lines.append(f"{label:<10} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>7.3f}"
                     f" {row['support']:>8,}")
    return lines


def write_per_class_csv(metrics, path):
    rows = [["emotion", "precision", "recall", "f1", "support"]]
    rows += [[label, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", r["support"]]
             for label, r in metrics["per_class"].items()]
    write_text_atomic(path, "\n".join(",".join(map(str, row)) for row in rows) + "\n")


def write_evidence(folder, metrics, history, categories, prefix=""):
    """metrics.json, per_class.csv, training_curves.png (unless `history` is None: a model judged again
    keeps the curves its training drew) and confusion_matrix.png in `folder`, with the crowd's
    per_class_crowd.csv and confusion_matrix_crowd.png when the metrics have them."""
    from emotion_analyzer.common.plots import plot_confusion_matrix, plot_training_curves

    folder = Path(folder)
    write_json_atomic(folder / f"{prefix}metrics.json", metrics)
    write_per_class_csv(metrics, folder / f"{prefix}per_class.csv")
    if history is not None:
        plot_training_curves(history, folder / f"{prefix}training_curves.png")
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), categories, folder / f"{prefix}confusion_matrix.png")
    if "crowd" in metrics:
        write_per_class_csv(metrics["crowd"], folder / f"{prefix}per_class_crowd.csv")
        plot_confusion_matrix(np.array(metrics["crowd"]["confusion_matrix"]), categories,
                              folder / f"{prefix}confusion_matrix_crowd.png", truth="the crowd's majority")


def read_history(path):
    """A run's history.csv (written by callbacks.EpochCheckpoint) as {column: [values]}, without the
    columns that are NA throughout (val_accuracy and val_loss, when there is no validation set)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = {key: [row[key] for row in rows] for key in (rows[0] if rows else {}) if key != "epoch"}
    return {key: [float("nan") if value == "NA" else float(value) for value in values]
            for key, values in columns.items() if any(value != "NA" for value in values)}
