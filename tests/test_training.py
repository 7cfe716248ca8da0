import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import training
from conftest import EMOTIONS6, ROOT, make_prepared_data
from emotion_analyzer.fileio import save_pickle_atomic
from emotion_analyzer.training import (classification_metrics, cosine_learning_rate, read_history,
                                       stratified_validation_split)

FAST = ["--epochs", "1", "--batch-size", "32", "--augment", "mild"]


def run_training(data, tmp_path, *extra):
    return training.main(["--data", str(data), "--model", str(tmp_path / "res" / "model.keras"),
                          "--runs", str(tmp_path / "runs"), *extra])


def only_run(tmp_path):
    (run,) = (tmp_path / "runs").iterdir()
    return run


def test_one_epoch_leaves_every_artefact(prepared_data, tmp_path, capsys):
    assert run_training(prepared_data, tmp_path, *FAST) == 0
    out = capsys.readouterr().out
    assert "device: CPU" in out and "test accuracy" in out and "macro F1" in out
    model_path = tmp_path / "res" / "model.keras"
    info = json.loads(model_path.with_suffix(".json").read_text())
    assert info["labels"] == EMOTIONS6
    assert info["input_shape"] == [48, 48, 1]
    assert info["dataset"] == {"data_dir": str(prepared_data), "train": 216, "validation": 24, "test": 60}
    metrics = info["test_metrics"]
    assert 0 <= metrics["accuracy"] <= 1 and set(metrics["per_class"]) == set(EMOTIONS6)
    assert metrics["test_images_with_train_twin"] == 5
    assert "accuracy_without_train_twins" in metrics
    assert info["tta"] == metrics["tta"] == "shifts" and "by test-time views: none" in out
    assert list(metrics["accuracy_by_tta"]) == ["none", "flip", "shifts"]
    assert metrics["accuracy"] == metrics["accuracy_by_tta"]["shifts"]
    run = only_run(tmp_path)
    for name in ("best.keras", "last.keras", "state.json", "history.csv", "metrics.json", "per_class.csv",
                 "training_curves.png", "confusion_matrix.png"):
        assert (run / name).stat().st_size > 0, name
    assert (tmp_path / "res" / "model_architecture.png").stat().st_size > 5000
    for name in ("metrics.json", "per_class.csv", "training_curves.png", "confusion_matrix.png"):
        assert (tmp_path / "res" / f"model_{name}").stat().st_size > 0, name
    with open(run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and {"accuracy", "val_accuracy", "loss", "val_loss"} <= set(rows[0])
    # The shipped file has no optimizer state: about a third of the checkpoint's size.
    assert model_path.stat().st_size < 0.5 * (run / "last.keras").stat().st_size


def test_a_finished_run_is_evaluated_again_with_other_views_without_training(prepared_data, tmp_path, capsys):
    import keras

    from emotion_analyzer.prep import load_prepared
    assert run_training(prepared_data, tmp_path, *FAST, "--no-tta") == 0
    run = only_run(tmp_path)
    assert run_training(prepared_data, tmp_path, "--resume", "--run-dir", str(run), "--tta", "flip") == 0
    assert "already trained 1 epochs" in capsys.readouterr().out
    assert len((run / "history.csv").read_text().splitlines()) == 2  # header + the one epoch: nothing trained
    info = json.loads((tmp_path / "res" / "model.json").read_text())
    assert info["tta"] == "flip"
    model = keras.models.load_model(run / "best.keras")
    x_test, y_test = load_prepared(prepared_data)[2:4]
    x_test = x_test.astype("float32")
    both = model.predict(x_test, verbose=0) + model.predict(x_test[:, :, ::-1], verbose=0)
    assert abs((both.argmax(axis=1) == y_test).mean() - info["test_metrics"]["accuracy"]) < 1e-6


def test_val_split_zero_trains_on_every_image_and_keeps_the_last_epoch(prepared_data, tmp_path, capsys):
    import keras

    # Patience 1 would stop a run whose validation never improves; with no validation it must not act.
    assert run_training(prepared_data, tmp_path, *FAST, "--val-split", "0", "--patience", "1", "--no-tta") == 0
    run = only_run(tmp_path)
    assert run_training(prepared_data, tmp_path, "--resume", "--run-dir", str(run), "--epochs", "3") == 0
    out = capsys.readouterr().out
    assert "validation 0," in out and "no validation set" in out and "(no validation)" in out
    info = json.loads((tmp_path / "res" / "model.json").read_text())
    assert info["dataset"]["train"] == 240 and info["dataset"]["validation"] == 0
    assert info["epochs_trained"] == 3 and info["test_metrics"]["best_epoch"] == 3
    assert info["test_metrics"]["best_val_accuracy"] is None
    history = read_history(run / "history.csv")
    assert len(history["accuracy"]) == 3 and "val_accuracy" not in history
    best, last = keras.models.load_model(run / "best.keras"), keras.models.load_model(run / "last.keras")
    for saved, trained in zip(best.get_weights(), last.get_weights()):
        np.testing.assert_array_equal(saved, trained)
    assert (tmp_path / "res" / "model_training_curves.png").stat().st_size > 0


def test_val_split_zero_refuses_a_schedule_that_watches_validation(prepared_data, tmp_path, capsys):
    assert run_training(prepared_data, tmp_path, *FAST, "--val-split", "0", "--schedule", "plateau") == 2
    assert "--schedule plateau watches validation accuracy" in capsys.readouterr().err


def test_saved_model_takes_raw_pixels_and_predicts_like_training(prepared_data, tmp_path):
    import keras

    from emotion_analyzer.prep import load_prepared
    assert run_training(prepared_data, tmp_path, *FAST, "--no-tta") == 0
    model = keras.models.load_model(tmp_path / "res" / "model.keras")
    x_test, y_test = load_prepared(prepared_data)[2:4]
    predicted = model.predict(x_test, verbose=0).argmax(axis=1)
    info = json.loads((tmp_path / "res" / "model.json").read_text())
    assert abs((predicted == y_test).mean() - info["test_metrics"]["accuracy"]) < 1e-6


def test_ctrl_c_mid_run_then_resume(prepared_data, tmp_path, capsys, monkeypatch):
    add_callback(monkeypatch, ctrl_c_in_second_epoch())
    assert run_training(prepared_data, tmp_path, *FAST[2:], "--epochs", "2", "--limit", "200") == 130
    first = capsys.readouterr()
    assert "--resume" in first.err
    sizes = re.search(r"train \d+, validation \d+", first.out).group()
    assert sizes.startswith("train 18")  # 200 images less a tenth held out
    run = only_run(tmp_path)
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 1
    assert not [p for p in run.iterdir() if ".tmp" in p.name]
    assert not (tmp_path / "res" / "model.keras").exists()

    monkeypatch.undo()  # the resumed run gets no Ctrl-C
    assert run_training(prepared_data, tmp_path, "--resume") == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 1" in out
    assert sizes in out  # the same --limit subset and validation split as before the interruption
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == 2 and state["recipe"]["batch_size"] == 32
    with open(run / "history.csv") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1"]
    assert (tmp_path / "res" / "model.keras").is_file()


def ctrl_c_in_second_epoch():
    """A callback that presses Ctrl-C at the third batch of the second epoch."""
    import keras

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 1 and batch == 2:
                raise KeyboardInterrupt

    return CtrlC()


def first_step_weights(seen):
    """A callback that records in `seen` the weights the first training step starts from."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.setdefault("weights", [np.array(v) for v in self.model.trainable_variables])

    return Recorder()


def add_callback(monkeypatch, callback):
    """Make training runs use `callback` after their own, until monkeypatch.undo()."""
    from emotion_analyzer import training as training_module

    real = training_module.make_callbacks
    monkeypatch.setattr(training_module, "make_callbacks", lambda *a, **k: real(*a, **k) + [callback])


def test_weight_average_is_validated_checkpointed_and_resumed(prepared_data, tmp_path, monkeypatch):
    import keras

    from emotion_analyzer.prep import load_prepared

    add_callback(monkeypatch, ctrl_c_in_second_epoch())
    assert run_training(prepared_data, tmp_path, *FAST[2:], "--epochs", "2", "--ema", "0.9", "--no-tta",
                        "--label-smoothing", "0") == 130
    run = only_run(tmp_path)
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == 1

    # The validation accuracy on record is that of the checkpointed weights: the average.
    x, y = load_prepared(prepared_data)[:2]
    _, val_idx = stratified_validation_split(y, 0.1, state["recipe"]["seed"])
    best = keras.models.load_model(run / "best.keras")
    accuracy = (best.predict(x[val_idx], verbose=0).argmax(axis=1) == y[val_idx]).mean()
    assert accuracy == pytest.approx(state["best_val_accuracy"], abs=1e-6)

    # Mid-run the checkpoint's model holds the average; the raw weights wait in the optimizer's slots.
    checkpoint = keras.models.load_model(run / "last.keras")
    raw = [np.array(v) for v in checkpoint.optimizer._model_variables_moving_average]
    averaged = [np.array(v) for v in checkpoint.trainable_variables]
    assert len(raw) == len(averaged) == 12  # kernel and bias of 3 conv and 3 dense layers
    assert max(np.abs(r - a).max() for r, a in zip(raw, averaged)) > 1e-4

    # Resuming trains on from the raw weights, not from the average.
    seen = {}
    monkeypatch.undo()
    add_callback(monkeypatch, first_step_weights(seen))
    assert run_training(prepared_data, tmp_path, "--resume") == 0
    for now, r in zip(seen["weights"], raw):
        np.testing.assert_array_equal(now, r)
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 2


@pytest.mark.parametrize("option, value", [("--ema", "1.5"), ("--weight-decay", "-0.1"), ("--erase", "1.5"),
                                           ("--warmup", "1"), ("--self-distill", "1.0"), ("--mixup", "-0.2")])
def test_out_of_range_optimizer_settings_are_refused(prepared_data, tmp_path, capsys, option, value):
    assert run_training(prepared_data, tmp_path, *FAST, option, value) == 2
    err = capsys.readouterr().err
    assert f"{option} {value}" in err and "Traceback" not in err


def test_self_distillation_loss_mixes_the_label_with_the_previous_prediction():
    import keras

    from emotion_analyzer.distill import SelfDistillingCrossEntropy

    loss = SelfDistillingCrossEntropy(num_images=4, num_classes=3)
    labels = np.array([[0, 1, 0], [1, 0, 0]], dtype="float32")
    train_labels = np.hstack([labels, [[2], [0]]]).astype("float32")  # images 2 and 0 of the training set
    first = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], dtype="float32")
    second = np.array([[0.1, 0.6, 0.3], [0.6, 0.1, 0.3]], dtype="float32")

    def cross_entropy(targets, predictions):
        return float(np.mean(keras.losses.categorical_crossentropy(targets, predictions)))

    # Weight 0 (the first epoch): the plain label; the predictions go into the table at rows 2 and 0.
    assert float(loss(train_labels, first)) == pytest.approx(cross_entropy(labels, first), rel=1e-6)
    np.testing.assert_allclose(loss.predictions.numpy(), [first[1], [0, 0, 0], first[0], [0, 0, 0]])

    # A later epoch: each image's target mixes its label with its own row of the table.
    loss.weight.assign(0.5)
    expected = cross_entropy(0.5 * labels + 0.5 * first, second)
    assert float(loss(train_labels, second)) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(loss.predictions.numpy()[[2, 0]], second)

    # Validation labels carry no index: the plain label, and the table stays as it was.
    assert float(loss(labels, first)) == pytest.approx(cross_entropy(labels, first), rel=1e-6)
    np.testing.assert_allclose(loss.predictions.numpy()[[2, 0]], second)


def distill_recorder(seen):
    """A callback that records the self-distillation weight of each epoch and the table at the start."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["table at start"] = self.model.loss.predictions.numpy().copy()

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                seen.setdefault("weights", []).append(float(self.model.loss.weight.numpy()))

    return Recorder()


def test_self_distillation_fills_a_table_of_every_training_image_and_resumes_with_it(prepared_data, tmp_path,
                                                                                      capsys, monkeypatch):
    from emotion_analyzer.distill import TABLE_FILE
    from emotion_analyzer.model import load_trained_model

    seen = {}
    add_callback(monkeypatch, distill_recorder(seen))
    assert run_training(prepared_data, tmp_path, *FAST[2:], "--epochs", "2", "--self-distill", "0.8",
                        "--no-tta") == 0
    assert seen["weights"] == pytest.approx([0.0, 0.8])  # 0 in the first epoch, W in the last
    run = only_run(tmp_path)
    table = np.load(run / TABLE_FILE)
    assert table.shape == (216, 6)  # one row per training image (240 less a tenth held out)
    # Every training image's row holds a prediction from the last epoch: probabilities summing to 1.
    np.testing.assert_allclose(table.sum(axis=1), 1.0, rtol=1e-5)
    with open(run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0 <= float(row["accuracy"]) <= 1 and 0 <= float(row["val_accuracy"]) <= 1 for row in rows)
    model, info = load_trained_model(tmp_path / "res" / "model.keras")  # the shipped model has no loss in it
    assert model.output_shape == (None, 6) and info["recipe"]["self_distill"] == 0.8

    # --resume with more epochs loads the table, and the weights follow the new, longer schedule.
    seen.clear()
    assert run_training(prepared_data, tmp_path, "--resume", "--epochs", "3") == 0
    np.testing.assert_array_equal(seen["table at start"], table)
    assert seen["weights"] == pytest.approx([0.8])  # epoch 3 of 3
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 3

    # Without its table a run cannot go on distilling: one line says so and what to do.
    (run / TABLE_FILE).unlink()
    capsys.readouterr()
    assert run_training(prepared_data, tmp_path, "--resume", "--epochs", "4") == 2
    err = capsys.readouterr().err
    assert TABLE_FILE in err and "start a new run" in err and "Traceback" not in err


def test_self_distillation_refuses_class_weights(prepared_data, tmp_path, capsys):
    assert run_training(prepared_data, tmp_path, *FAST, "--self-distill", "0.5", "--class-weight") == 2
    assert "--self-distill with --class-weight" in capsys.readouterr().err


def erased_boxes(before, after):
    """For each image, None if untouched, else (rows, cols, fill) of the changed pixels' bounding box."""
    boxes = []
    for old, new in zip(before[..., 0], after[..., 0]):
        changed = np.argwhere(old != new)
        if not len(changed):
            boxes.append(None)
            continue
        (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0) + 1
        boxes.append((slice(top, bottom), slice(left, right), new[top, left]))
    return boxes


def test_random_erasing_blanks_one_rectangle_to_the_image_mean():
    from emotion_analyzer.training import ERASE_AREA, erase_rectangles

    rng = np.random.default_rng(3)
    faces = rng.integers(0, 256, (300, 48, 48, 1)).astype(np.float32)
    assert np.array_equal(erase_rectangles(faces, 0.0).numpy(), faces)

    erased = erase_rectangles(faces, 1.0).numpy()
    for face, after, box in zip(faces, erased, erased_boxes(faces, erased)):
        rows, cols, fill = box
        # The whole box holds the image's mean grey and nothing outside it changed.
        assert fill == pytest.approx(face.mean(), abs=1e-3)
        assert np.all(after[rows, cols] == fill)
        outside = np.ones(face.shape, bool)
        outside[rows, cols] = False
        assert np.array_equal(after[outside], face[outside])
        area = (rows.stop - rows.start) * (cols.stop - cols.start) / 48 ** 2
        assert ERASE_AREA[0] * 0.8 <= area <= ERASE_AREA[1] * 1.2  # rounding to whole pixels

    half = erase_rectangles(faces, 0.5).numpy()
    share = np.mean([box is not None for box in erased_boxes(faces, half)])
    assert 0.38 < share < 0.62  # 300 draws: 0.5 +- 4 standard errors


def test_random_erasing_reaches_training_batches_only(prepared_data):
    from emotion_analyzer.prep import load_prepared
    from emotion_analyzer.training import Recipe, make_dataset

    x = load_prepared(prepared_data)[0].astype(np.float32)
    index = np.arange(len(x))  # as the "labels", to find each shuffled image's original
    recipe = Recipe(augment="none", erase=1.0, label_smoothing=0.0, batch_size=len(x))
    (train_batch, order), = make_dataset(x, index, recipe, 6, training=True)
    (plain_batch, _), = make_dataset(x, index, recipe, 6, training=False)
    assert np.array_equal(plain_batch.numpy(), x)
    originals = x[order.numpy()]
    boxes = erased_boxes(originals, train_batch.numpy())
    assert all(box is not None for box in boxes)
    for face, (_, _, fill) in zip(originals, boxes):
        assert fill == pytest.approx(face.mean(), abs=1e-3)


def test_mixup_blends_each_image_with_one_partner_by_the_share_its_label_records():
    from emotion_analyzer.training import mix_images

    rng = np.random.default_rng(5)
    n = 500
    faces = rng.integers(0, 256, (n, 48, 48, 1)).astype(np.float32)
    own_class = np.eye(n, dtype=np.float32)  # each image its own class, so a label names both partners
    shares = {}
    for alpha in (0.2, 1.0, 2.0):
        images, labels = (t.numpy() for t in mix_images(faces, own_class, alpha))
        np.testing.assert_allclose(labels.sum(axis=1), 1, atol=1e-5)
        share = labels[np.arange(n), np.arange(n)]
        assert share.min() >= 0.5  # each image stays the larger part of its blend
        for i in range(n):
            others = np.flatnonzero(labels[i] > 1e-6)
            partner = others[others != i][0] if len(others) > 1 else i
            np.testing.assert_allclose(images[i], share[i] * faces[i] + (1 - share[i]) * faces[partner], atol=1e-2)
        shares[alpha] = share
    # Folded, Beta(1, 1) (uniform) averages 0.75 and Beta(2, 2) 0.6875 (standard errors about 0.006);
    # Beta(0.2, 0.2) piles up at the ends, so most images are barely blended.
    assert shares[1.0].mean() == pytest.approx(0.75, abs=0.025)
    assert shares[2.0].mean() == pytest.approx(0.6875, abs=0.025)
    assert np.median(shares[0.2]) > 0.9 > np.median(shares[1.0])


def test_mixup_reaches_training_batches_only_and_trains(prepared_data, tmp_path):
    from emotion_analyzer.prep import load_prepared
    from emotion_analyzer.training import Recipe, make_dataset

    x, y = load_prepared(prepared_data)[:2]
    recipe = Recipe(augment="none", mixup=1.0, label_smoothing=0.0, batch_size=len(x))
    (_, mixed), = make_dataset(x, y, recipe, 6, training=True)
    (_, plain), = make_dataset(x, y, recipe, 6, training=False)
    assert np.array_equal(plain.numpy(), np.eye(6)[y])
    assert np.mean(mixed.numpy().max(axis=1) < 1) > 0.5  # uniform shares: most labels are blends
    # Categorical targets even with no smoothing, through the command line to a saved model.
    assert run_training(prepared_data, tmp_path, *FAST, "--label-smoothing", "0", "--mixup", "0.2") == 0
    assert (tmp_path / "res" / "model.keras").is_file()


def test_mixup_refuses_self_distillation(prepared_data, tmp_path, capsys):
    assert run_training(prepared_data, tmp_path, *FAST, "--mixup", "0.2", "--self-distill", "0.5") == 2
    assert "--mixup with --self-distill" in capsys.readouterr().err


def test_weight_decay_shrinks_the_weights(prepared_data, tmp_path):
    import keras

    norms = {}
    for decay in ("0", "40"):  # 40 x lr 1e-3: each of the 7 steps shrinks the weights by 4%
        folder = tmp_path / decay
        assert run_training(prepared_data, folder, *FAST, "--lr", "0.001", "--ema", "0", "--weight-decay", decay) == 0
        model = keras.models.load_model(folder / "res" / "model.keras")
        norms[decay] = np.sqrt(sum((np.asarray(w) ** 2).sum() for w in model.trainable_weights))
    assert norms["40"] < 0.85 * norms["0"]


def test_resume_without_a_run_says_so(prepared_data, tmp_path, capsys):
    assert run_training(prepared_data, tmp_path, "--resume") == 2
    assert "no run with a checkpoint" in capsys.readouterr().err


def test_original_recipe_is_the_original_run():
    args = training.parse_args(["--original"])
    recipe = training.recipe_from_args(args)
    assert (recipe.epochs, recipe.batch_size, recipe.augment, recipe.label_smoothing, recipe.schedule) == \
        (12, 64, "none", 0.0, "constant")
    assert (recipe.scaling, recipe.init) == ("unit", "glorot")  # pixels / 255, Keras' default weights
    assert recipe.ema == 0.0  # the plain weights, no average
    assert recipe.learning_rate == 1e-3  # the original's Adam, whatever the default rate becomes


def test_original_architecture():
    from emotion_analyzer.model import build_model

    model = build_model((48, 48, 1), 6)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    drops = [layer for layer in model.layers if type(layer).__name__ == "Dropout"]
    assert [c.filters for c in convs] == [50, 75, 125] and all(c.kernel_size == (3, 3) for c in convs)
    assert [d.units for d in dense] == [500, 250, 6] and [d.rate for d in drops] == [0.3, 0.2]
    assert model.count_params() == 500 + 33_825 + 84_500 + 6_250_500 + 125_250 + 1_506


@pytest.mark.parametrize("scaling, low, high", [("unit", 0.0, 1.0), ("center", -1.0, 1.0)])
def test_input_scaling_lives_in_the_model_and_keeps_the_architecture(scaling, low, high):
    import keras

    from emotion_analyzer.model import build_model

    model = build_model((48, 48, 1), 6, scaling=scaling, init="he")
    assert model.count_params() == build_model((48, 48, 1), 6).count_params()
    scaler = keras.Model(model.input, model.layers[1].output)
    pixels = np.stack([np.zeros((48, 48, 1)), np.full((48, 48, 1), 255.0)]).astype("float32")
    scaled = scaler.predict(pixels, verbose=0)
    np.testing.assert_allclose([scaled[0].min(), scaled[1].max()], [low, high], atol=1e-6)


def test_standardized_input_ignores_brightness_and_contrast_and_survives_save_load_and_tflite(tmp_path):
    import keras

    from emotion_analyzer.model import build_model

    keras.utils.set_random_seed(1)
    model = build_model((48, 48, 1), 6, scaling="standardize")
    assert model.count_params() == build_model((48, 48, 1), 6).count_params()
    face = np.random.default_rng(2).integers(60, 180, (48, 48, 1)).astype("float32")
    darker_flatter = 0.5 * face + 10
    blank = np.full((48, 48, 1), 200.0, dtype="float32")
    batch = np.stack([face, darker_flatter, blank])
    scaler = keras.Model(model.input, model.get_layer("scale_standardize").output)
    scaled = scaler.predict(batch, verbose=0).reshape(3, -1)
    np.testing.assert_allclose(scaled[:2].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(scaled[:2].std(axis=1), 1, atol=1e-2)
    np.testing.assert_allclose(scaled[0], scaled[1], atol=1e-2)
    np.testing.assert_array_equal(scaled[2], 0)  # no division by a zero spread
    np.testing.assert_allclose(model.predict(batch[:1], verbose=0), model.predict(batch[1:2], verbose=0), atol=1e-3)

    # Built from stock layers only: it loads without custom objects, and TensorFlow Lite agrees.
    assert_survives_save_load_and_tflite(model, batch, tmp_path)


def assert_survives_save_load_and_tflite(model, batch, tmp_path):
    from emotion_analyzer.classify import EmotionClassifier
    from emotion_analyzer.model import load_trained_model, save_model_atomic, save_model_info

    path = tmp_path / "model.keras"
    save_model_atomic(model, path, include_optimizer=False)
    save_model_info(path, {"labels": [f"e{i}" for i in range(6)], "input_shape": [48, 48, 1]})
    loaded, info = load_trained_model(path)
    expected = model.predict(batch, verbose=0)
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), expected, atol=1e-6)
    lite = EmotionClassifier(loaded, info["labels"], engine="tflite").classify(batch.astype(np.uint8))
    np.testing.assert_allclose(lite, model.predict(batch.astype(np.uint8).astype("float32"), verbose=0), atol=1e-5)


def test_equalized_input_keeps_only_the_order_of_grey_levels_and_survives_save_load_and_tflite(tmp_path):
    import keras

    from emotion_analyzer.model import build_model

    keras.utils.set_random_seed(1)
    model = build_model((48, 48, 1), 6, scaling="equalize")
    assert model.count_params() == build_model((48, 48, 1), 6).count_params()
    face = np.random.default_rng(2).integers(60, 181, (48, 48, 1)).astype("float32")
    # A tone curve that brightens and bends the tones but keeps distinct grey levels distinct and in order.
    toned = np.round(face + (face - 60) ** 2 / 240)
    two_tone = np.where(np.arange(48 * 48).reshape(48, 48, 1) % 2, 200.0, 10.0).astype("float32")
    blank = np.full((48, 48, 1), 90.0, dtype="float32")
    batch = np.stack([face, toned, two_tone, blank])
    scaler = keras.Model(model.input, model.get_layer("scale_equalize").output)
    scaled = scaler.predict(batch, verbose=0).reshape(4, -1)
    np.testing.assert_allclose(scaled[0], scaled[1], atol=1e-6)
    np.testing.assert_allclose(scaled[:2].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(scaled[:2].std(axis=1), 1, atol=0.02)  # 121 levels: nearly uniform ranks
    # Half the pixels dark, half bright: mid-ranks 1/4 and 3/4, i.e. -/+ sqrt(12)/4.
    np.testing.assert_allclose(np.unique(scaled[2]), [-np.sqrt(12) / 4, np.sqrt(12) / 4], atol=1e-6)
    np.testing.assert_array_equal(scaled[3], 0)
    np.testing.assert_allclose(model.predict(batch[:1], verbose=0), model.predict(batch[1:2], verbose=0), atol=1e-6)

    # Our own layer: it loads through load_trained_model, and TensorFlow Lite runs it natively.
    assert_survives_save_load_and_tflite(model, batch, tmp_path)


def test_unknown_scaling_or_initialiser_is_refused():
    from emotion_analyzer.errors import UserError
    from emotion_analyzer.model import build_model

    with pytest.raises(UserError, match="input scaling 'pm1'"):
        build_model((48, 48, 1), 6, scaling="pm1")
    with pytest.raises(UserError, match="initializer 'zeros'"):
        build_model((48, 48, 1), 6, init="zeros")


def write(folder, name, obj):
    save_pickle_atomic(folder / name, obj)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "features.pickle").unlink(), "Run prep_data.py"),
    (lambda d: write(d, "labels.pickle", np.zeros(10, np.int64)), "240 features but 10 labels"),
    (lambda d: write(d, "labels.pickle", np.full(240, 9, np.int64)), "outside the 6 categories"),
    (lambda d: write(d, "features.pickle", np.zeros((240, 32, 32, 1), np.uint8)), "expected (N, 48, 48, 1)"),
    (lambda d: write(d, "labels.pickle", np.zeros(240, np.float32)), "expected integers"),
    (lambda d: (d / "features.pickle").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR."), "refused to load"),
])
def test_bad_training_input_gives_one_clear_line(prepared_data, tmp_path, capsys, damage, message):
    damage(prepared_data)
    assert run_training(prepared_data, tmp_path, *FAST) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_epochs_zero_is_refused(prepared_data, tmp_path, capsys):
    assert run_training(prepared_data, tmp_path, "--epochs", "0") == 2
    assert "at least one epoch" in capsys.readouterr().err


def test_rare_class_warns(tmp_path, capsys):
    data = make_prepared_data(tmp_path / "data", n_train=240)
    from emotion_analyzer.prep import load_prepared
    x, y = load_prepared(data)[:2]
    y = np.where(y == 5, 4, y)
    y[:3] = 5
    write(data, "labels.pickle", y)
    assert run_training(data, tmp_path, *FAST) == 0
    assert "only 3 training image(s) of 'surprise'" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(prepared_data, tmp_path, capsys):
    assert run_training(prepared_data, tmp_path, *FAST) == 0
    run = only_run(tmp_path)
    good = (run / "last.keras").read_bytes()
    from emotion_analyzer.prep import load_prepared
    x = load_prepared(prepared_data)[0].astype(np.float32)
    x[:] = np.nan
    write(prepared_data, "features.pickle", x)
    assert run_training(prepared_data, tmp_path, "--resume", "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert "NaN" in err and "last.keras" in err
    assert (run / "last.keras").read_bytes() == good
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 1


def test_model_json_names_project_folders_relative_to_the_project(tmp_path):
    from emotion_analyzer import config

    assert config.portable_path(config.DEFAULT_DATA_DIR) == "data"
    assert config.portable_path(config.PROJECT_ROOT / "runs" / "20261124-003241") == "runs/20261124-003241"
    assert config.portable_path(tmp_path / "data") == str(tmp_path / "data")


def test_validation_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(6), [100, 50, 200, 80, 60, 40])
    train_idx, val_idx = stratified_validation_split(labels, 0.1, seed=1)
    assert not set(train_idx) & set(val_idx) and len(train_idx) + len(val_idx) == len(labels)
    assert np.bincount(labels[val_idx]).tolist() == [10, 5, 20, 8, 6, 4]


def test_metrics_on_a_known_confusion():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"], leak_mask=np.array([0, 1, 0, 0, 0, 0], bool))
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["a"]["recall"] == pytest.approx(0.5)
    assert metrics["accuracy_without_train_twins"] == pytest.approx(4 / 5)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_cosine_schedule_decays_to_one_percent():
    rate = cosine_learning_rate(1e-3, 10)
    assert rate(0) == pytest.approx(1e-3) and rate(9) == pytest.approx(1e-5)
    assert rate(0) > rate(4) > rate(9)


def test_warmup_ramps_the_rate_per_step_to_the_schedule_then_leaves_it(tmp_path):
    import keras

    from emotion_analyzer.model import build_model
    from emotion_analyzer.training import Recipe, compile_model, make_callbacks, make_warmup_callback

    recipe = Recipe(epochs=3, batch_size=8, warmup=1, augment="none", label_smoothing=0.0)
    model = build_model((48, 48, 1), 6, scaling=recipe.scaling)
    compile_model(model, recipe, 32)
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    state = {"epochs_done": 0, "best_val_accuracy": -1.0, "best_epoch": 0}
    callbacks = make_callbacks(recipe, tmp_path, state, resuming=False, validating=False) + [Recorder()]
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 48, 48, 1)).astype("float32"), rng.integers(0, 6, 32)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks)  # 4 steps an epoch

    schedule = cosine_learning_rate(recipe.learning_rate, recipe.epochs)
    np.testing.assert_allclose(seen[:4], [schedule(0) * k / 4 for k in (1, 2, 3, 4)], rtol=1e-6)
    np.testing.assert_allclose(seen[4:], [schedule(1)] * 4 + [schedule(2)] * 4, rtol=1e-6)

    # A callback before it that halves the rate mid-warm-up (as a plateau schedule would) is kept:
    # the ramp goes on towards half the rate, and half the rate stays after the warm-up.
    class HalveAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                self.model.optimizer.learning_rate.assign(rate / 2)

    compile_model(model, recipe, 32)
    seen.clear()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0,
              callbacks=[HalveAfterFirstEpoch(), make_warmup_callback(2), Recorder()])
    base = recipe.learning_rate
    np.testing.assert_allclose(seen, [base * k / 8 for k in (1, 2, 3, 4)] + [base / 2 * k / 8 for k in (5, 6, 7, 8)]
                               + [base / 2] * 4, rtol=1e-6)


def test_mirrored_strategy_trains_over_two_cpu_devices(prepared_data, tmp_path):
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import training
code = training.main(["--data", {str(prepared_data)!r}, "--model", {str(tmp_path / 'm.keras')!r},
                      "--runs", {str(tmp_path / 'runs')!r}, "--epochs", "1", "--batch-size", "32",
                      "--strategy", "mirrored"])
print("replicas", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).num_replicas_in_sync)
sys.exit(code)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "replicas 2" in result.stdout and "test accuracy" in result.stdout
    assert (tmp_path / "m.keras").is_file()
