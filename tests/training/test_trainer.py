import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

import training
from emotion_analyzer.core.framing import DEFAULT_FRAMING, DEFAULT_FRAMINGS, framings_of_model
from emotion_analyzer.training.evaluate import read_history
from emotion_analyzer.training.recipe import recipe_from_saved

FAST = ["--epochs", "1", "--batch-size", "32", "--augment", "mild"]
slow = pytest.mark.slow  # runs model.fit: skipped by `pytest -m "not slow"`, run by CI


def run_training(data, tmp_path, *extra):
    return training.main(["--data", str(data), "--model", str(tmp_path / "res" / "model.keras"),
                          "--runs", str(tmp_path / "runs"), *extra])


def only_run(tmp_path):
    (run,) = (tmp_path / "runs").iterdir()
    return run


@slow
def test_one_epoch_leaves_every_artefact(prepared_data, tmp_path, capsys, emotions6):
    assert run_training(prepared_data, tmp_path, *FAST) == 0
    out = capsys.readouterr().out
    assert "device: CPU" in out and "test accuracy" in out and "macro F1" in out
    model_path = tmp_path / "res" / "model.keras"
    info = json.loads(model_path.with_suffix(".json").read_text())
    assert info["labels"] == emotions6
    assert info["input"]["shape"] == [48, 48, 1] and info["input"]["equalized"]
    assert info["framings"]["haar"] == {"margin": DEFAULT_FRAMING.margin, "offset": DEFAULT_FRAMING.offset}
    assert framings_of_model(info) == {kind: replace(f, equalize=True) for kind, f in DEFAULT_FRAMINGS.items()}
    assert info["dataset"] == {"data_dir": str(prepared_data), "train": 216, "validation": 24, "test": 60}
    metrics = info["test_metrics"]
    assert 0 <= metrics["accuracy"] <= 1 and set(metrics["per_class"]) == set(emotions6)
    assert metrics["test_images_with_train_twin"] == 5
    assert "accuracy_without_train_twins" in metrics
    assert metrics["tta"] == "shifts" and "tta" not in info and "by test-time views: none" in out
    assert list(metrics["accuracy_by_tta"]) == ["none", "flip", "shifts"]
    assert metrics["accuracy"] == metrics["accuracy_by_tta"]["shifts"]
    run = only_run(tmp_path)
    for name in ("best.keras", "last.keras", "state.json", "history.csv", "metrics.json", "per_class.csv",
                 "training_curves.png", "confusion_matrix.png"):
        assert (run / name).stat().st_size > 0, name
    assert (tmp_path / "res" / "model_architecture.png").stat().st_size > 5000  # named after the model: model.keras
    for name in ("metrics.json", "per_class.csv", "training_curves.png", "confusion_matrix.png"):
        assert (tmp_path / "res" / f"model_{name}").stat().st_size > 0, name
    with open(run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and {"accuracy", "val_accuracy", "loss", "val_loss"} <= set(rows[0])
    # The shipped file has no optimizer state: about a third of the checkpoint's size.
    assert model_path.stat().st_size < 0.5 * (run / "last.keras").stat().st_size


@slow
def test_the_crowd_s_votes_are_learned_and_judge_the_model(tmp_path, capsys, make_prepared_data):
    """Most labels name the wrong class, the crowd the right one: trained on the crowd's votes the
    model agrees with the crowd, trained on the labels it learns the labeller's error."""
    data = make_prepared_data(tmp_path / "data", n_train=240, crowd_disagrees=0.8)
    agreement = {}
    for crowd in ("0", "1"):
        model = tmp_path / crowd / "model.keras"
        assert training.main(["--data", str(data), "--model", str(model), "--runs", str(tmp_path / crowd / "runs"),
                              "--epochs", "3", "--batch-size", "32", "--augment", "none", "--crowd", crowd,
                              "--tta", "none"]) == 0
        info = json.loads(model.with_suffix(".json").read_text())
        agreement[crowd] = info["test_metrics"]["crowd"]["accuracy"]
        assert info["test_metrics"]["crowd"]["test_images"] == 60
        for name in ("per_class_crowd.csv", "confusion_matrix_crowd.png"):
            assert (model.parent / f"model_{name}").stat().st_size > 0
    out = capsys.readouterr().out
    assert "targets: 0% label, 100% the crowd's votes; 240 of 240 faces with usable crowd votes" in out
    assert "against the crowd's majority" in out
    assert agreement["1"] > 0.8 and agreement["0"] < 0.5, agreement


@slow
def test_a_finished_run_is_evaluated_again_with_other_views_without_training(prepared_data, tmp_path, capsys):
    import keras

    from emotion_analyzer.core.images import equalize
    from emotion_analyzer.data.prepared import load_prepared
    assert run_training(prepared_data, tmp_path, *FAST, "--no-tta") == 0
    run = only_run(tmp_path)
    assert run_training(prepared_data, tmp_path, "--resume", "--run-dir", str(run), "--tta", "flip") == 0
    assert "already trained 1 epochs" in capsys.readouterr().out
    assert len((run / "history.csv").read_text().splitlines()) == 2  # header + the one epoch: nothing trained
    info = json.loads((tmp_path / "res" / "model.json").read_text())
    assert info["test_metrics"]["tta"] == "flip"
    # The saved model, float32 as the run judged it: the checkpoint computes in bfloat16 where the CPU
    # trains in it, and faces an undertrained model nearly ties on can then go either way.
    model = keras.models.load_model(tmp_path / "res" / "model.keras")
    x_test, y_test = load_prepared(prepared_data)[2:4]
    x_test = equalize(x_test)  # as the run was trained and tested
    both = model.predict(x_test, verbose=0) + model.predict(x_test[:, :, ::-1], verbose=0)
    assert abs((both.argmax(axis=1) == y_test).mean() - info["test_metrics"]["accuracy"]) < 1e-6


@slow
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


@slow
def test_the_saved_model_in_plain_keras_reads_what_its_json_says(prepared_data, tmp_path):
    """A Keras user who loads the .keras file and gives it faces as its JSON's input record says (and its
    input layer's name) gets the answers training measured."""
    import keras

    from emotion_analyzer.core.images import equalize
    from emotion_analyzer.data.prepared import load_prepared
    from emotion_analyzer.training.evaluate import predict_with_views

    assert run_training(prepared_data, tmp_path, *FAST, "--no-tta") == 0
    model = keras.models.load_model(tmp_path / "res" / "model.keras")
    info = json.loads((tmp_path / "res" / "model.json").read_text())
    assert info["input"] == {"shape": [48, 48, 1], "dtype": "uint8", "range": "0-255 grayscale; the model normalises",
                             "equalized": True, "equalizer": "cv2.equalizeHist on each 48x48 uint8 face"}
    assert model.layers[0].name == "equalized_uint8_face"
    x_test, y_test = load_prepared(prepared_data)[2:4]
    faces = equalize(x_test)
    given = model.predict(faces, verbose=0)
    # The same probabilities as the evaluation's function, up to float rounding on any CPU...
    np.testing.assert_allclose(given, predict_with_views(model, faces, "none"), atol=1e-4)
    # ...so the accuracy is the JSON's, but for a face whose two best answers tie to that rounding.
    assert abs((given.argmax(axis=1) == y_test).mean() - info["test_metrics"]["accuracy"]) <= 1 / len(y_test) + 1e-9


@slow
def test_ctrl_c_mid_run_then_resume(prepared_data, tmp_path, capsys, monkeypatch):
    add_callback(monkeypatch, ctrl_c_in_second_epoch())
    assert run_training(prepared_data, tmp_path, *FAST[2:], "--epochs", "2", "--limit", "200", "--no-tta") == 130
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
    from emotion_analyzer.training import callbacks

    real = callbacks.make_callbacks
    monkeypatch.setattr(callbacks, "make_callbacks", lambda *a, **k: real(*a, **k) + [callback])


@slow
def test_weight_decay_shrinks_the_weights(prepared_data, tmp_path):
    import keras

    norms = {}
    for decay in ("0", "40"):  # 40 x lr 1e-3: each of the 7 steps shrinks the weights by 4%
        folder = tmp_path / decay
        assert run_training(prepared_data, folder, *FAST, "--lr", "0.001", "--weight-decay", decay, "--no-tta") == 0
        model = keras.models.load_model(folder / "res" / "model.keras")
        norms[decay] = np.sqrt(sum((np.asarray(w) ** 2).sum() for w in model.trainable_weights))
    assert norms["40"] < 0.85 * norms["0"]


@slow
def test_resume_keeps_the_runs_model_path_and_recipe(prepared_data, tmp_path, capsys):
    mine = tmp_path / "mine" / "model.keras"
    assert training.main(["--data", str(prepared_data), "--model", str(mine), "--runs", str(tmp_path / "runs"),
                          *FAST, "--no-tta"]) == 0
    run = only_run(tmp_path)
    first = mine.read_bytes()
    # Changed recipe flags are refused by name; the run is left as it was.
    capsys.readouterr()
    assert training.main(["--data", str(prepared_data), "--runs", str(tmp_path / "runs"), "--resume",
                          "--lr", "0.01", "--batch-size", "32", "--augment", "none"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.01 (the run's: 0.0005)" in err and "--augment none (the run's: mild)" in err
    assert "--batch-size" not in err  # given, but the same as the run's
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 1
    # Without --model a resume saves where the run was started to save (never over the shipped model),
    # and without --data it reads the set it was started on.
    assert training.main(["--runs", str(tmp_path / "runs"), "--resume", "--epochs", "2"]) == 0
    assert f"model: {mine}" in capsys.readouterr().out
    assert mine.read_bytes() != first
    assert json.loads(mine.with_suffix(".json").read_text())["epochs_trained"] == 2


@slow
def test_a_run_resumed_in_another_precision_carries_its_weights_and_momentum(prepared_data, tmp_path, capsys):
    import keras

    from emotion_analyzer.training.trainer import in_precision

    assert run_training(prepared_data, tmp_path, *FAST, "--optimizer", "sgd", "--lr", "0.01", "--no-tta",
                        "--precision", "float32", "--limit", "120") == 0
    run = only_run(tmp_path)
    float32_run = keras.models.load_model(run / "last.keras")
    recipe = recipe_from_saved(json.loads((run / "state.json").read_text())["recipe"])
    converted = in_precision(float32_run, recipe, 6, "bfloat16")
    assert converted.get_layer("conv_50").compute_dtype == "bfloat16"
    for before, after in zip(float32_run.get_weights(), converted.get_weights()):
        assert np.array_equal(before, after)
    momentum = [v for v in float32_run.optimizer.variables if "momentum" in v.path]
    assert momentum and any(np.abs(np.asarray(v)).sum() > 0 for v in momentum)
    for before, after in zip(float32_run.optimizer.variables, converted.optimizer.variables):
        assert np.array_equal(np.asarray(before), np.asarray(after))
    capsys.readouterr()
    assert training.main(["--data", str(prepared_data), "--runs", str(tmp_path / "runs"), "--resume",
                          "--epochs", "2", "--precision", "bfloat16"]) == 0
    assert "precision: bfloat16 (--precision bfloat16 asked for)" in capsys.readouterr().out
    sessions = json.loads((run / "state.json").read_text())["precision_by_session"]
    assert [(s["from_epoch"], s["precision"]) for s in sessions] == [(0, "float32"), (1, "bfloat16")]


@slow
def test_sgd_batch_norm_bfloat16_run_saves_a_float32_model_with_the_original_layers(prepared_data, tmp_path):
    import keras

    from emotion_analyzer.core.images import equalize
    from emotion_analyzer.core.model import build_model
    from emotion_analyzer.data.prepared import load_prepared

    assert run_training(prepared_data, tmp_path, *FAST, "--optimizer", "sgd", "--lr", "0.01", "--batch-norm",
                        "--precision", "bfloat16", "--erase", "0.25", "--weight-decay", "0.005", "--no-tta",
                        "--limit", "120") == 0  # bfloat16 is emulated, and slow, on CPUs without AVX-512 BF16
    run = only_run(tmp_path)
    checkpoint = keras.models.load_model(run / "best.keras")
    assert type(checkpoint.optimizer).__name__ == "SGD" and checkpoint.optimizer.nesterov
    assert checkpoint.get_layer("conv_50").compute_dtype == "bfloat16"
    shipped = keras.models.load_model(tmp_path / "res" / "model.keras")
    assert [type(layer).__name__ for layer in shipped.layers] == \
        [type(layer).__name__ for layer in build_model((48, 48, 1), 6, scaling="standardize").layers]
    assert all(w.dtype == "float32" for w in shipped.weights)
    assert shipped.get_layer("conv_50").compute_dtype == "float32"
    # The shipped model is what was evaluated: its test accuracy is the one on record.
    x_test, y_test = load_prepared(prepared_data)[2:4]
    info = json.loads((tmp_path / "res" / "model.json").read_text())
    assert info["input"]["equalized"]  # tested as the analyzer reads faces
    accuracy = (shipped.predict(equalize(x_test), verbose=0).argmax(axis=1) == y_test).mean()
    # The same faces as the evaluation, but for one whose two best answers tie to float rounding.
    assert abs(accuracy - info["test_metrics"]["accuracy"]) <= 1 / len(y_test) + 1e-9


@slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(prepared_data, tmp_path, capsys, monkeypatch, nan_loss_at):
    assert run_training(prepared_data, tmp_path, *FAST, "--no-tta") == 0
    run = only_run(tmp_path)
    good = (run / "last.keras").read_bytes()
    add_callback(monkeypatch, nan_loss_at(epoch=1, batch=2))
    capsys.readouterr()
    assert run_training(prepared_data, tmp_path, "--resume", "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert "NaN in epoch 2" in err and "last.keras" in err and "Traceback" not in err
    assert (run / "last.keras").read_bytes() == good
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 1


@slow
def test_a_fine_tune_starts_from_the_trained_model_s_weights(prepared_data, tmp_path, project_root):
    """At a learning rate too small to move them, a fine-tune of the shipped model reads faces as it
    does: it started from its weights, not from random ones."""
    import keras

    from emotion_analyzer.core.model import as_the_model_reads, load_model_info
    from emotion_analyzer.data.prepared import load_prepared

    shipped = project_root / "res" / "emotion_model.keras"
    assert run_training(prepared_data, tmp_path, "--start-from", str(shipped), "--epochs", "1", "--optimizer", "sgd",
                        "--lr", "1e-12", "--weight-decay", "0", "--no-tta") == 0
    tuned = tmp_path / "res" / "model.keras"
    assert load_model_info(tuned)["recipe"]["start_from"] == str(shipped)
    faces = as_the_model_reads(load_prepared(prepared_data)[2], load_model_info(shipped)).astype("float32")
    expected = keras.models.load_model(shipped).predict(faces, verbose=0)
    np.testing.assert_allclose(keras.models.load_model(tuned).predict(faces, verbose=0), expected, atol=1e-4)


@pytest.mark.parametrize("classes, flags, message", [
    (("angry", "happy", "neutral", "sad", "surprise"), (),
     "its emotions are angry, fear, happy, neutral, sad, surprise, the data's angry, happy, neutral, sad, surprise"),
    (None, ("--no-equalize",), "it reads equalized faces, this recipe unequalized ones"),
    (None, ("--scaling", "unit"), "it was trained with --scaling standardize, this recipe with unit"),
    (None, ("--batch-norm",), "batch norm folded away"),
])
def test_a_fine_tune_from_a_model_that_does_not_fit_is_one_line_before_tensorflow(tmp_path, capsys, project_root,
                                                                                  make_prepared_data, classes, flags,
                                                                                  message):
    data = make_prepared_data(tmp_path / "data", **({"classes": classes} if classes else {}))
    shipped = project_root / "res" / "emotion_model.keras"
    assert run_training(data, tmp_path, *FAST, "--start-from", str(shipped), *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --start-from {shipped}") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_resume_without_a_run_says_so(prepared_data, tmp_path, capsys):
    assert run_training(prepared_data, tmp_path, "--resume") == 2
    assert "no run with a checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--weight-decay", "-0.1"), ("--erase", "1.5"), ("--limit", "0"),
                                           ("--limit", "-5"), ("--epochs", "0"), ("--batch-size", "-1"),
                                           ("--patience", "-2"), ("--lr", "0")])
def test_impossible_numbers_are_refused_at_parse_time(prepared_data, tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as stop:
        run_training(prepared_data, tmp_path, option, value)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {value}: expected" in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--model", "--runs"])
def test_an_impossible_output_path_is_one_line_before_any_work(prepared_data, tmp_path, capsys, flag):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    paths = {"--model": tmp_path / "res" / "model.keras", "--runs": tmp_path / "runs"}
    paths[flag] = blocker / "below" / paths[flag].name
    assert training.main(["--data", str(prepared_data), *FAST, "--model", str(paths["--model"]),
                          "--runs", str(paths["--runs"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} ") and "is a file, not a folder" in err and "Traceback" not in err


def mix_in(other, data, name):
    """Replace one file of the prepared set in `data` by the same file of another prepared set."""
    (data / name).write_bytes((other / name).read_bytes())


def replace_with_consistent_manifest(data, name, content):
    """Write `content` as `name` and update the manifest to match, as a deliberate tamperer would."""
    from emotion_analyzer.data.prepared import fingerprint

    (data / name).write_bytes(content)
    manifest = json.loads((data / "prepared.json").read_text())
    manifest["files"][name] = {"bytes": len(content), "blake2b": fingerprint(content)}
    (data / "prepared.json").write_text(json.dumps(manifest))


def rewrite_set(data, **changes):
    from emotion_analyzer.data.prepared import load_prepared, write_prepared_set

    x, y, xt, yt, categories, leak = load_prepared(data)
    arrays = {"x": x, "y": y, "xt": xt, "yt": yt, **changes}
    write_prepared_set(data, arrays["x"], arrays["y"], arrays["xt"], arrays["yt"], leak, categories)


@pytest.mark.parametrize("damage, message", [
    (lambda d, o: (d / "features.pickle").unlink(), "features.pickle is missing from the prepared set"),
    (lambda d, o: (d / "prepared.json").unlink(), "without prepared.json"),
    (lambda d, o: mix_in(o, d, "labels.pickle"), "labels.pickle does not match prepared.json"),
    (lambda d, o: rewrite_set(d, y=np.zeros(10, np.int64)), "240 features but 10 labels"),
    (lambda d, o: rewrite_set(d, y=np.full(240, 9, np.int64)), "outside the 6 categories"),
    (lambda d, o: rewrite_set(d, x=np.zeros((240, 32, 32, 1), np.uint8)), "expected (N, 48, 48, 1)"),
    (lambda d, o: rewrite_set(d, y=np.zeros(240, np.float32)), "expected integers"),
    (lambda d, o: replace_with_consistent_manifest(d, "features.pickle", b"cos\nsystem\n(S'touch pwned'\ntR."),
     "refused to load"),
])
def test_bad_or_mixed_training_input_gives_one_clear_line(prepared_data, tmp_path, capsys, damage, message,
                                                          make_prepared_data):
    other = make_prepared_data(tmp_path / "other", seed=1)  # another prep run: same sizes, another shuffle
    damage(prepared_data, other)
    assert run_training(prepared_data, tmp_path, *FAST) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "res" / "model.keras").exists()


@slow
def test_mirrored_strategy_trains_over_two_cpu_devices(prepared_data, tmp_path, project_root):
    script = f"""
import sys
sys.path.insert(0, {str(project_root)!r})
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


def test_a_missing_prepared_set_is_said_before_tensorflow_starts(tmp_path, project_root):
    code = ("import sys, training; code = training.main(['--data', sys.argv[1]]);"
            " print(code, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nothing")], cwd=project_root,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"]
    assert "no prepared data" in done.stderr and done.stderr.count("\n") == 1


@slow
def test_evaluate_judges_a_model_trained_without_votes_by_the_crowd_and_leaves_the_model_alone(
        prepared_data, tmp_path, capsys, make_prepared_data):
    import keras

    from emotion_analyzer.core.images import equalize
    from emotion_analyzer.data.prepared import load_prepared
    assert run_training(prepared_data, tmp_path, *FAST, "--no-tta") == 0
    model_path = tmp_path / "res" / "model.keras"
    before = json.loads(model_path.with_suffix(".json").read_text())
    assert "crowd" not in before["test_metrics"]
    model_bytes = model_path.read_bytes()
    voted = make_prepared_data(tmp_path / "voted", seed=7, crowd_disagrees=0.0)  # other faces, the crowd agrees
    capsys.readouterr()
    assert training.main(["--evaluate", "--data", str(voted), "--model", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "against the crowd's majority, one view" in out and "rewritten" in out
    info = json.loads(model_path.with_suffix(".json").read_text())
    metrics = info["test_metrics"]
    x_test, y_test = load_prepared(voted)[2:4]
    answers = keras.models.load_model(model_path).predict(equalize(x_test).astype("float32"), verbose=0).argmax(1)
    assert metrics["tta"] == "none" and metrics["accuracy"] == pytest.approx((answers == y_test).mean())
    # every vote is on the label here, so the crowd judges as the labels do
    assert metrics["crowd"]["accuracy"] == pytest.approx(metrics["accuracy"]) and metrics["crowd"]["test_images"] == 60
    assert metrics["best_epoch"] == before["test_metrics"]["best_epoch"]
    assert info["judged"]["test"] == 60 and info["recipe"] == before["recipe"]
    assert model_path.read_bytes() == model_bytes
    for name in ("per_class_crowd.csv", "confusion_matrix_crowd.png", "training_curves.png"):
        assert (model_path.parent / f"model_{name}").stat().st_size > 0, name


@slow
def test_evaluate_refuses_a_set_of_other_emotions_in_one_line(prepared_data, tmp_path, capsys, make_prepared_data):
    assert run_training(prepared_data, tmp_path, *FAST, "--no-tta") == 0
    json_path = tmp_path / "res" / "model.json"
    before = json_path.read_text()
    other = make_prepared_data(tmp_path / "five", classes=["angry", "fear", "happy", "neutral", "sad"])
    capsys.readouterr()
    assert training.main(["--evaluate", "--data", str(other), "--model", str(tmp_path / "res" / "model.keras")]) != 0
    err = capsys.readouterr().err
    assert "reads angry, fear, happy, neutral, sad, surprise but" in err and "--data" in err
    assert "Traceback" not in err and json_path.read_text() == before


@pytest.mark.parametrize("flag", [["--lr", "0.1"], ["--resume"], ["--limit", "10"]])
def test_evaluate_refuses_what_would_train(prepared_data, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as stop:
        run_training(prepared_data, tmp_path, "--evaluate", *flag)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"--evaluate judges a trained model and trains nothing: drop {flag[0]}" in err and "Traceback" not in err


@slow
def test_evaluate_a_run_dir_reads_its_checkpoint_as_the_run_saves_it_and_writes_nothing(tmp_path, capsys,
                                                                                         make_prepared_data):
    data = make_prepared_data(tmp_path / "data", crowd_disagrees=0.5)
    # batch norm: the checkpoint must be folded as the saved model was; no validation: the saved model is the last
    assert run_training(data, tmp_path, *FAST, "--batch-norm", "--val-split", "0", "--no-tta") == 0
    saved = json.loads((tmp_path / "res" / "model.json").read_text())["test_metrics"]
    run = only_run(tmp_path)
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    capsys.readouterr()
    assert training.main(["--evaluate", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "the checkpoint after epoch 1 of 1" in out
    assert f"test accuracy {saved['accuracy']:.4f} on 60 images" in out
    assert f"against the crowd's majority, one view: {saved['crowd']['accuracy']:.4f} on the 60 faces" in out
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


@pytest.mark.parametrize("files, message", [([], "not a run folder (no state.json)"),
                                            (["state.json"], "no last.keras yet; a run writes it when its first")])
def test_evaluate_a_run_dir_without_a_checkpoint_is_one_line(tmp_path, capsys, files, message):
    run = tmp_path / "run"
    run.mkdir()
    for name in files:
        (run / name).write_text("{}")
    assert training.main(["--evaluate", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_evaluate_takes_a_model_or_a_run_dir_not_both(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        training.main(["--evaluate", "--run-dir", str(tmp_path), "--model", str(tmp_path / "m.keras")])
    assert stop.value.code == 2 and "drop one" in capsys.readouterr().err
