"""What runs around each epoch: the checkpoint a run resumes from, the learning-rate schedule, and
progress lines within an epoch where the output is a log.

Imports Keras; only the training code imports this module, after TensorFlow has started.
"""

import csv
import io
import math
import time

import keras
import numpy as np

from emotion_analyzer.training.distribute import on_this_worker_only
from emotion_analyzer.common.cli import LOG_PROGRESS_SECONDS
from emotion_analyzer.common.stops import deferred, raise_if_stopped
from emotion_analyzer.common.fileio import write_json_atomic, write_text_atomic
from emotion_analyzer.core.model import save_model_atomic
from emotion_analyzer.training.runs import BEST_CHECKPOINT, HISTORY_FILE, LAST_CHECKPOINT, STATE_FILE


def cosine_learning_rate(base, epochs):
    """Per-epoch cosine decay from `base` to 1% of it; recomputed from --epochs on resume."""
    def rate(epoch, _current=None):
        progress = min(epoch / max(epochs - 1, 1), 1.0)
        return float(base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))))
    return rate


def current_learning_rate(model):
    """The optimizer's learning rate now, as a plain float."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def history_with(path, row):
    """history.csv's text with `row` ({column: value}) added as the last epoch."""
    rows = list(csv.DictReader(path.open(newline=""))) if path.is_file() else []
    rows.append(row)
    columns = list(dict.fromkeys(key for r in rows for key in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="NA", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


class EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: last.keras, best.keras (when validation improves, or every epoch without a
    validation set), the history row and state.json, written as one unit.

    Each file is written atomically and the set with signals held back, so an interrupted run leaves
    the files of one epoch, never a mix; nothing is written after an epoch whose loss is NaN.
    """

    def __init__(self, run_dir, state, validating):
        super().__init__()
        self.run_dir, self.state, self.validating = run_dir, state, validating
        self.diverged_in = None  # the epoch (from 1) whose loss became NaN, if one did

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not all(np.isfinite(float(v)) for v in logs.values()):
            self.diverged_in = epoch + 1
            return
        logs["learning_rate"] = current_learning_rate(self.model)
        val_accuracy = float(logs["val_accuracy"]) if self.validating else None
        improved = not self.validating or val_accuracy > self.state["best_val_accuracy"]
        history = history_with(self.run_dir / HISTORY_FILE, {"epoch": epoch, **{k: float(v) for k, v in logs.items()}})
        with deferred(), on_this_worker_only():
            if improved:
                save_model_atomic(self.model, self.run_dir / BEST_CHECKPOINT)
                self.state.update(best_val_accuracy=val_accuracy, best_epoch=epoch + 1)
            save_model_atomic(self.model, self.run_dir / LAST_CHECKPOINT)
            write_text_atomic(self.run_dir / HISTORY_FILE, history)
            self.state.update(epochs_done=epoch + 1, learning_rate=logs["learning_rate"])
            write_json_atomic(self.run_dir / STATE_FILE, self.state)


class StopAtBatchEnd(keras.callbacks.Callback):
    """Stop at the end of a batch when a stop signal came during it (see stops.at_safe_points).

    Last in the list, so an epoch that has just ended is checkpointed first.
    """

    def on_train_batch_end(self, batch, logs=None):
        raise_if_stopped()

    def on_test_batch_end(self, batch, logs=None):
        raise_if_stopped()

    def on_epoch_end(self, epoch, logs=None):
        raise_if_stopped()


class ProgressLines(keras.callbacks.Callback):
    """Where the output is a log, Keras prints a line per epoch only (verbose=2): this adds one every
    `seconds` within the epoch, so a long epoch shows it is moving."""

    def __init__(self, print_line=print, seconds=LOG_PROGRESS_SECONDS):
        super().__init__()
        self.print_line, self.seconds = print_line, seconds

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.started = epoch, time.monotonic()
        self.said = self.started

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if now - self.said < self.seconds:
            return
        self.said = now
        steps = self.params.get("steps")
        done = f"{batch + 1:,}/{steps:,} batches" if steps else f"{batch + 1:,} batches"
        measured = "".join(f", {name} {value:.4f}" for name, value in (logs or {}).items()
                           if name in ("loss", "accuracy"))
        self.print_line(f"epoch {self.epoch + 1}/{self.params.get('epochs')}: {done}{measured},"
                        f" {now - self.started:.0f} s", flush=True)


def make_callbacks(recipe, run_dir, state, validating, writes=True, log_lines=False):
    """The callbacks of a run; `writes` False on the workers of a cluster that leave the files to the chief;
    `log_lines` when the output is a log rather than a terminal."""
    callbacks = [keras.callbacks.TerminateOnNaN()] + ([ProgressLines()] if log_lines else [])
    if recipe.schedule == "cosine":
        callbacks.append(keras.callbacks.LearningRateScheduler(cosine_learning_rate(recipe.learning_rate,
                                                                                    recipe.epochs)))
    elif recipe.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=2, min_lr=1e-5))
    if writes:
        callbacks.append(EpochCheckpoint(run_dir, state, validating))  # after the plateau: it saves the new rate
    if recipe.patience and validating:
        callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=recipe.patience, mode="max"))
    callbacks.append(StopAtBatchEnd())
    return callbacks
