import json

import numpy as np
import pytest

from emotion_analyzer.training.evaluate import read_history


def test_cosine_schedule_decays_to_one_percent():
    from emotion_analyzer.training.callbacks import cosine_learning_rate

    rate = cosine_learning_rate(1e-3, 10)
    assert rate(0) == pytest.approx(1e-3) and rate(9) == pytest.approx(1e-5)
    assert rate(0) > rate(4) > rate(9)


def tiny_fit(tmp_path, callbacks_for, epochs=2):
    """Two epochs of the real model on 32 generated images, with make_callbacks' callbacks plus more."""
    import keras

    from emotion_analyzer.training.callbacks import make_callbacks
    from emotion_analyzer.training.recipe import Recipe
    from emotion_analyzer.training.trainer import build_for_training

    recipe = Recipe(epochs=epochs, batch_size=8, augment="none", label_smoothing=0.0, crowd=0.0, val_split=0.0)
    keras.utils.set_random_seed(0)
    model = build_for_training(recipe, 6, "float32")
    state = {"epochs_done": 0, "best_val_accuracy": -1.0, "best_epoch": 0}
    callbacks = make_callbacks(recipe, tmp_path, state, validating=False)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 48, 48, 1)).astype("float32"), rng.integers(0, 6, 32)
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks + callbacks_for(model))
    return callbacks, state


@pytest.mark.slow
def test_checkpoint_writes_each_epoch_as_one_unit(tmp_path):
    callbacks, state = tiny_fit(tmp_path, lambda model: [])
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["epochs_done"] == state["epochs_done"] == 2 and saved["best_epoch"] == 2
    assert len(read_history(tmp_path / "history.csv")["loss"]) == 2
    assert (tmp_path / "last.keras").is_file() and (tmp_path / "best.keras").is_file()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_a_nan_epoch_writes_nothing_and_is_reported(tmp_path, nan_loss_at):
    callbacks, state = tiny_fit(tmp_path, lambda model: [nan_loss_at(epoch=1, batch=1)], epochs=3)
    from emotion_analyzer.training.callbacks import EpochCheckpoint

    checkpoint = next(c for c in callbacks if isinstance(c, EpochCheckpoint))
    assert checkpoint.diverged_in == 2
    assert json.loads((tmp_path / "state.json").read_text())["epochs_done"] == 1  # the last good epoch
    assert len(read_history(tmp_path / "history.csv")["loss"]) == 1


@pytest.mark.slow
def test_a_stop_signal_during_a_batch_stops_fit_as_the_batch_ends_after_the_last_whole_epoch(tmp_path):
    import os
    import signal

    import keras

    from emotion_analyzer.common.stops import at_safe_points, exit_code

    class SignalDuringBatch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch, self.batches_ended = 0, 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if (self.epoch, batch) == (1, 1):
                os.kill(os.getpid(), signal.SIGTERM)

        def on_train_batch_end(self, batch, logs=None):
            self.batches_ended += 1  # called after make_callbacks' stop check, which comes first in the list

    during = SignalDuringBatch()
    with pytest.raises(KeyboardInterrupt) as stopped, at_safe_points():
        tiny_fit(tmp_path, lambda model: [during], epochs=3)
    assert exit_code(stopped.value) == 128 + signal.SIGTERM
    # 32 images in batches of 8: the first epoch's 4 and the next one's first; the second batch of the
    # second epoch ran to its end, where the stop came.
    assert during.batches_ended == 4 + 1
    assert json.loads((tmp_path / "state.json").read_text())["epochs_done"] == 1


@pytest.mark.slow
def test_within_an_epoch_a_log_gets_progress_lines(tmp_path):
    from emotion_analyzer.training.callbacks import ProgressLines

    lines = []
    tiny_fit(tmp_path, lambda model: [ProgressLines(lambda line, flush: lines.append(line), seconds=0)])
    assert len(lines) == 8  # 4 batches in each of 2 epochs
    assert lines[0].startswith("epoch 1/2: 1/4 batches, ") and ", loss " in lines[0] and ", accuracy " in lines[0]
    assert lines[-1].startswith("epoch 2/2: 4/4 batches") and lines[-1].endswith(" s")
