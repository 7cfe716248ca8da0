"""Train, checkpoint, resume and evaluate the emotion CNN.

A run lives in its own folder (runs/<time>/): last.keras and state.json after every epoch (to resume
after Ctrl-C or a crash), best.keras (best validation accuracy), history.csv, metrics and plots. The
chosen model is then copied, without optimizer state, to --model with its JSON (labels first).
"""

import csv
import datetime
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.cli import warn
from emotion_analyzer.errors import UserError
from emotion_analyzer.fileio import write_json_atomic, write_text_atomic

MIN_SAMPLES_PER_CLASS = 20
STATE_FILE = "state.json"
LAST_CHECKPOINT = "last.keras"
BEST_CHECKPOINT = "best.keras"
HISTORY_FILE = "history.csv"


@dataclass
class Recipe:
    """Everything that decides how a model is trained; saved with the run so --resume repeats it."""
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 5e-4     # chosen over 1e-3 and 2e-3 on validation (README, experiments)
    optimizer: str = "adam"         # adam | sgd (Nesterov, momentum SGD_MOMENTUM)
    schedule: str = "cosine"        # cosine | plateau | constant
    augment: str = "light"          # none | light | mild | strong
    label_smoothing: float = 0.1
    class_weight: bool = False
    val_split: float = 0.1
    patience: int = 6               # early stopping on validation accuracy; 0 = off
    tta: str = "shifts"             # test-time views averaged: none | flip (and mirror) | shifts (5 shifts x 2)
    seed: int = config.DEFAULT_SEED
    padding: str = "valid"
    scaling: str = "standardize"    # input normalisation inside the model: standardize (per image) | center | unit
    init: str = "glorot"            # weight initialiser: glorot (Keras default) | he
    ema: float = 0.0                # momentum of a weight average to validate and keep, such as 0.998; 0 = off
    weight_decay: float = 0.0       # decoupled (AdamW-style) decay per step, times the learning rate; 0 = off
    batch_norm: bool = False        # batch normalisation after each conv and dense layer (folded away when saved)
    precision: str = "float32"      # float32 | bfloat16 (mixed: bfloat16 compute, float32 weights and output)
    erase: float = 0.0              # chance that a training image gets one rectangle blanked out; 0 = off
    warmup: int = 0                 # epochs over which the learning rate rises per step from 0 to its schedule
    self_distill: float = 0.0       # last epoch's weight of each image's previous prediction in its target; 0 = off
    mixup: float = 0.0              # alpha of the Beta distribution mixup draws each image's share from; 0 = off
    strategy: str = "default"

    @classmethod
    def original(cls):
        """The original project's run: batch 64, 12 epochs, no augmentation, no validation tricks."""
        return cls(epochs=12, batch_size=64, learning_rate=1e-3, schedule="constant", augment="none",
                   label_smoothing=0.0, class_weight=False, val_split=0.1, patience=0, tta="none",
                   scaling="unit", init="glorot", ema=0.0, weight_decay=0.0)


# A run saved before one of these options existed trained with what was then the only choice.
RECIPE_BEFORE_OPTION_EXISTED = {"scaling": "unit", "init": "glorot", "ema": 0.0, "weight_decay": 0.0,
                                "erase": 0.0, "warmup": 0, "self_distill": 0.0, "mixup": 0.0,
                                "optimizer": "adam", "batch_norm": False, "precision": "float32"}
SGD_MOMENTUM = 0.9
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}  # --precision: Keras dtype policy

AUGMENTATIONS = {
    # (horizontal flip, translation fraction, rotation fraction of a turn, zoom fraction)
    "none": None,
    "light": (True, 0.05, 0.0, 0.0),
    "mild": (True, 0.1, 0.03, 0.05),
    "strong": (True, 0.1, 0.05, 0.1),
}


def validate_recipe(recipe):
    if recipe.epochs < 1:
        raise UserError(f"--epochs {recipe.epochs}: train for at least one epoch")
    if recipe.batch_size < 1:
        raise UserError(f"--batch-size {recipe.batch_size}: expected a positive number")
    if not 0 <= recipe.val_split < 0.5:
        raise UserError(f"--val-split {recipe.val_split}: expected a fraction such as 0.1, or 0 to train on all")
    if not recipe.val_split and recipe.schedule == "plateau":
        raise UserError("--schedule plateau watches validation accuracy; with --val-split 0 use --schedule cosine")
    if not 0 <= recipe.label_smoothing < 1:
        raise UserError(f"--label-smoothing {recipe.label_smoothing}: expected 0 to 1, such as 0.1")
    if recipe.learning_rate <= 0:
        raise UserError(f"--lr {recipe.learning_rate}: expected a positive number such as 0.001")
    if recipe.weight_decay < 0:
        raise UserError(f"--weight-decay {recipe.weight_decay}: expected 0 (off) or a positive number such as 0.05")
    if not 0 <= recipe.erase <= 1:
        raise UserError(f"--erase {recipe.erase}: expected a probability from 0 (off) to 1, such as 0.5")
    if not 0 <= recipe.warmup < recipe.epochs:
        raise UserError(f"--warmup {recipe.warmup}: expected 0 (off) or fewer epochs than --epochs {recipe.epochs}")
    if not 0 <= recipe.self_distill < 1:
        raise UserError(f"--self-distill {recipe.self_distill}: expected 0 (off) or a weight below 1, such as 0.8")
    if recipe.self_distill and recipe.class_weight:
        raise UserError("--self-distill with --class-weight: Keras would read the image index that self-distillation"
                        " adds to each label as a class; use one or the other")
    if recipe.self_distill and recipe.strategy != "default":
        raise UserError(f"--self-distill with --strategy {recipe.strategy}: its table of predictions lives on one"
                        " device; use the default strategy")
    if recipe.mixup < 0:
        raise UserError(f"--mixup {recipe.mixup}: expected 0 (off) or a positive alpha such as 0.2")
    if recipe.mixup and recipe.self_distill:
        raise UserError("--mixup with --self-distill: a mixed image has no single row in the table of previous"
                        " predictions; use one or the other")
    if recipe.optimizer not in OPTIMIZERS:
        raise UserError(f"--optimizer {recipe.optimizer}: expected one of {', '.join(OPTIMIZERS)}")
    if recipe.precision not in PRECISIONS:
        raise UserError(f"--precision {recipe.precision}: expected one of {', '.join(PRECISIONS)}")
    if not 0 <= recipe.ema < 1:
        raise UserError(f"--ema {recipe.ema}: expected 0 (off) or a momentum below 1, such as 0.998")


# ----------------------------------------------------------------------------- data

def check_arrays(x_train, y_train, x_test, y_test, categories, data_dir):
    """Validate the pickles' contents; return them as (N, 48, 48, 1) float-ready arrays and int labels."""
    checked = []
    for name, x, y in (("features/labels", x_train, y_train), ("test_features/test_labels", x_test, y_test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim == 3:
            x = x[..., np.newaxis]
        size = config.IMAGE_SIZE
        if x.ndim != 4 or x.shape[1:] != (size, size, 1):
            raise UserError(f"{data_dir}: {name}: features have shape {x.shape}; expected (N, {size}, {size}, 1)."
                            " Re-create them with prep_data.py")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise UserError(f"{data_dir}: {name}: features are {x.dtype}; expected uint8 pixels")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{data_dir}: {name}: labels are {y.dtype} of shape {y.shape}; expected integers (N,)")
        if len(x) != len(y):
            raise UserError(f"{data_dir}: {name}: {len(x):,} features but {len(y):,} labels. Re-run prep_data.py")
        if len(y) and (y.min() < 0 or y.max() >= len(categories)):
            raise UserError(f"{data_dir}: {name}: label {int(y.max() if y.max() >= len(categories) else y.min())}"
                            f" is outside the {len(categories)} categories {categories}. Re-run prep_data.py")
        checked += [x, y.astype(np.int64)]
    counts = np.bincount(checked[1], minlength=len(categories))
    for emotion, count in zip(categories, counts):
        if count < MIN_SAMPLES_PER_CLASS:
            warn(f"only {count} training image(s) of '{emotion}': the model will barely learn it")
    return checked


def stratified_validation_split(labels, fraction, seed):
    """Indices (train, validation): `fraction` of each class, chosen with `seed`; fraction 0 holds out none."""
    rng = np.random.default_rng(seed)
    if not fraction:
        return rng.permutation(len(labels)), np.zeros(0, dtype=np.int64)
    val = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_val = int(round(len(members) * fraction))
        if len(members) > 1:
            n_val = min(max(n_val, 1), len(members) - 1)
        else:
            n_val = 0
        val.extend(rng.choice(members, n_val, replace=False))
    val = np.sort(np.asarray(val, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return rng.permutation(train), val


def augmentation_layers(kind, seed):
    import keras
    from keras import layers

    settings = AUGMENTATIONS[kind]
    if settings is None:
        return None
    flip, shift, rotation, zoom = settings
    stack = [layers.RandomFlip("horizontal", seed=seed)] if flip else []
    stack.append(layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed))
    if rotation:
        stack.append(layers.RandomRotation(rotation, fill_mode="reflect", seed=seed))
    if zoom:
        stack.append(layers.RandomZoom(zoom, fill_mode="reflect", seed=seed))
    return keras.Sequential(stack, name="augmentation")


# Random erasing (Zhong et al., 2017): the blanked rectangle covers this fraction of the image and has
# an aspect ratio (height / width) in this range.
ERASE_AREA = (0.02, 0.2)
ERASE_ASPECT = (0.3, 3.3)


def erase_rectangles(images, probability):
    """With `probability`, blank one random rectangle of each image of a float batch (N, H, W, 1) to
    that image's mean grey, so a face must be read from whatever part of it is left."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    area = tf.random.uniform([n], *ERASE_AREA) * height * width
    log_aspect = tf.random.uniform([n], np.log(ERASE_ASPECT[0]), np.log(ERASE_ASPECT[1]))
    aspect = tf.exp(log_aspect)
    box_h = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1, height)
    box_w = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1, width)
    top = tf.floor(tf.random.uniform([n]) * (height - box_h + 1))
    left = tf.floor(tf.random.uniform([n]) * (width - box_w + 1))
    rows = tf.range(height, dtype=tf.float32)[tf.newaxis, :, tf.newaxis]
    cols = tf.range(width, dtype=tf.float32)[tf.newaxis, tf.newaxis, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + box_h)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + box_w)[:, None, None]))
    chosen = tf.random.uniform([n]) < probability
    mask = (inside & chosen[:, None, None])[..., tf.newaxis]
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return tf.where(mask, mean, images)


def mix_images(images, labels, alpha):
    """Mixup (Zhang et al., 2018) of a float batch and its one-hot labels: each image is blended with
    another of the batch, image and label alike, by a share drawn from Beta(alpha, alpha). The share
    is folded to at least one half so each image stays the larger part of its own blend."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    a = tf.random.gamma([n], alpha)
    b = tf.random.gamma([n], alpha)
    share = a / tf.maximum(a + b, 1e-12)
    share = tf.maximum(share, 1.0 - share)
    partner = tf.random.shuffle(tf.range(n))
    image_share = share[:, tf.newaxis, tf.newaxis, tf.newaxis]
    mixed_images = image_share * images + (1.0 - image_share) * tf.gather(images, partner)
    mixed_labels = share[:, tf.newaxis] * labels + (1.0 - share[:, tf.newaxis]) * tf.gather(labels, partner)
    return mixed_images, mixed_labels


def needs_one_hot(recipe):
    return bool(recipe.label_smoothing or recipe.self_distill or recipe.mixup)


def make_dataset(x, y, recipe, num_classes, training):
    """A tf.data pipeline: shuffle, batch, augment on the fly in parallel, one-hot when a recipe's
    targets are not single classes (smoothing, distilling, mixing)."""
    import tensorflow as tf

    if training and recipe.self_distill:
        y = np.stack([y, np.arange(len(y))], axis=1)  # each label carries its image's row in the table
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        dataset = dataset.shuffle(len(x), seed=recipe.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(recipe.batch_size)
    dataset = dataset.map(lambda a, b: (tf.cast(a, tf.float32), b), num_parallel_calls=tf.data.AUTOTUNE)
    augment = augmentation_layers(recipe.augment, recipe.seed) if training else None
    if augment is not None:
        dataset = dataset.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    if training and recipe.erase:
        dataset = dataset.map(lambda a, b: (erase_rectangles(a, recipe.erase), b),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if needs_one_hot(recipe):
        dataset = dataset.map(lambda a, b: (a, one_hot_labels(b, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
    if training and recipe.mixup:
        dataset = dataset.map(lambda a, b: mix_images(a, b, recipe.mixup), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def one_hot_labels(labels, num_classes):
    """One-hot labels; labels that carry an image index, (N, 2), keep it as a last column."""
    import tensorflow as tf

    if labels.shape.rank == 1:
        return tf.one_hot(labels, num_classes)
    return tf.concat([tf.one_hot(labels[:, 0], num_classes), tf.cast(labels[:, 1:], tf.float32)], axis=1)


def balanced_class_weights(labels, num_classes):
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


# ----------------------------------------------------------------------------- strategy

def make_strategy(name):
    """tf.distribute strategy: one device, all local GPUs (mirrored) or several machines (TF_CONFIG)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        import os

        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy multiworker needs TF_CONFIG set on every machine (cluster and task);"
                            " see the TensorFlow multi-worker guide")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"--strategy {name}: expected default, mirrored or multiworker")


# ----------------------------------------------------------------------------- callbacks

def cosine_learning_rate(base, epochs):
    """Per-epoch cosine decay from `base` to 1% of it; recomputed from --epochs on resume."""
    def rate(epoch, _current=None):
        progress = min(epoch / max(epochs - 1, 1), 1.0)
        return float(base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))))
    return rate


def current_learning_rate(model):
    """The optimizer's learning rate now, as a plain float."""
    import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def make_warmup_callback(warmup_epochs):
    """Scale the learning rate of each of the first `warmup_epochs` epochs by a per-step ramp up to 1.

    It reads the rate the schedule set at the epoch's start, so it works on top of any schedule, and
    puts that rate back at the epoch's end for the next epoch's schedule to start from, keeping any
    change a callback that ran before it made to the ramped rate (a plateau schedule halving it).
    """
    import keras

    class WarmUp(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.scheduled = self.ramped = current_learning_rate(self.model)

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch < warmup_epochs:
                steps = self.params["steps"]
                self.ramped = self.scheduled * (self.epoch * steps + batch + 1) / (warmup_epochs * steps)
                self.model.optimizer.learning_rate.assign(self.ramped)

        def on_epoch_end(self, epoch, logs=None):
            if epoch < warmup_epochs:
                changed_by = current_learning_rate(self.model) / self.ramped
                self.model.optimizer.learning_rate.assign(self.scheduled * changed_by)

    return WarmUp()


def make_checkpoint_callback(run_dir, state, validating):
    """After each epoch: last.keras and state.json (for resume), best.keras when validation improves.

    With no validation set (--val-split 0) there is nothing to choose by, so best.keras is the last epoch.

    Written atomically, and never when the loss is NaN, so a diverged epoch cannot replace a good file.
    """
    import keras

    from emotion_analyzer.model import save_model_atomic

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if not all(np.isfinite(v) for v in logs.values() if isinstance(v, (int, float))):
                return
            val_accuracy = float(logs["val_accuracy"]) if validating else None
            if not validating or val_accuracy > state["best_val_accuracy"]:
                save_model_atomic(self.model, run_dir / BEST_CHECKPOINT)
                state["best_val_accuracy"] = val_accuracy
                state["best_epoch"] = epoch + 1
            save_model_atomic(self.model, run_dir / LAST_CHECKPOINT)
            state["epochs_done"] = epoch + 1
            state["learning_rate"] = current_learning_rate(self.model)
            write_json_atomic(run_dir / STATE_FILE, state)

    return EpochCheckpoint()


def make_weight_average_callback(resuming):
    """Swap the optimizer's average of the weights into the model to validate and checkpoint it.

    Keras's callback swaps the average in at each epoch's end, so checkpoints hold it and the raw
    weights wait in the optimizer; it then assumes it starts with raw weights in the model. A
    checkpoint holds the average, so a resumed run must swap back before training on. (After a run's
    last epoch Keras sets both to the average, so extending a finished run goes on from the average.)
    """
    import keras

    swap = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    swap._ema_weights_in_model = resuming  # the flag on_epoch_begin checks; Keras has no argument for it
    return swap


def make_callbacks(recipe, run_dir, state, resuming, validating):
    import keras

    callbacks = [keras.callbacks.TerminateOnNaN()]
    if recipe.ema:
        callbacks.append(make_weight_average_callback(resuming))  # before the checkpoint, which saves the average
    if recipe.self_distill:
        from emotion_analyzer.distill import make_self_distill_callback

        # Before the checkpoint, so a state.json that counts an epoch always has that epoch's table.
        callbacks.append(make_self_distill_callback(recipe.self_distill, recipe.epochs, run_dir, resuming))
    callbacks += [make_checkpoint_callback(run_dir, state, validating),
                  keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=resuming)]
    if recipe.schedule == "cosine":
        schedule = cosine_learning_rate(recipe.learning_rate, recipe.epochs)
        callbacks.append(keras.callbacks.LearningRateScheduler(schedule))
    elif recipe.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=2, min_lr=1e-5))
    if recipe.warmup:
        callbacks.append(make_warmup_callback(recipe.warmup))  # after the schedule, whose rate it ramps up to
    if recipe.patience and validating:
        callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=recipe.patience, mode="max"))
    return callbacks


def compile_model(model, recipe, num_training_images):
    import keras

    if recipe.self_distill:
        from emotion_analyzer.distill import make_loss_and_accuracy

        loss, accuracy = make_loss_and_accuracy(num_training_images, model.output_shape[-1], recipe.label_smoothing)
    elif needs_one_hot(recipe):
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    shared = {"weight_decay": recipe.weight_decay or None, "use_ema": bool(recipe.ema),
              "ema_momentum": recipe.ema or 0.99}
    if recipe.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(recipe.learning_rate, momentum=SGD_MOMENTUM, nesterov=True, **shared)
    else:
        optimizer = keras.optimizers.Adam(recipe.learning_rate, **shared)
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])


# ----------------------------------------------------------------------------- evaluation

def predict_with_views(model, images, tta, batch_size=256):
    """Probabilities averaged over the `tta` views, by the same function the analyzer classifies with."""
    from emotion_analyzer.classify import probability_function

    probabilities = probability_function(model, tta)
    return np.concatenate([probabilities(images[start:start + batch_size]).numpy()
                           for start in range(0, len(images), batch_size)])


def evaluate(model, x_test, y_test, categories, leak, tta):
    """Test metrics of `model` with the `tta` views, and the accuracy with each smaller set of views."""
    from emotion_analyzer.classify import TTA_VIEWS, tta_name

    tta = tta_name(tta)
    accuracy_by_tta = {}
    for name in list(TTA_VIEWS)[:list(TTA_VIEWS).index(tta) + 1]:
        probabilities = predict_with_views(model, x_test, name)
        accuracy_by_tta[name] = float((probabilities.argmax(axis=1) == y_test).mean())
    metrics = classification_metrics(y_test, probabilities.argmax(axis=1), categories, leak)
    metrics["tta"] = tta
    metrics["accuracy_by_tta"] = accuracy_by_tta
    return metrics


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
    by_tta = metrics.get("accuracy_by_tta", {})
    if len(by_tta) > 1:
        lines.append("by test-time views: " + ", ".join(f"{name} {accuracy:.4f}" for name, accuracy in by_tta.items()))
    if "accuracy_without_train_twins" in metrics:
        lines.append(f"accuracy on the {metrics['test_images'] - metrics['test_images_with_train_twin']:,} test images"
                     f" with no identical twin in training: {metrics['accuracy_without_train_twins']:.4f}")
    lines.append(f"{'emotion':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
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
    """metrics.json, per_class.csv, training_curves.png and confusion_matrix.png in `folder`."""
    from emotion_analyzer.plots import plot_confusion_matrix, plot_training_curves

    folder = Path(folder)
    write_json_atomic(folder / f"{prefix}metrics.json", metrics)
    write_per_class_csv(metrics, folder / f"{prefix}per_class.csv")
    plot_training_curves(history, folder / f"{prefix}training_curves.png")
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), categories, folder / f"{prefix}confusion_matrix.png")


def read_history(path):
    """history.csv (Keras CSVLogger) as {column: [values]}, without the columns it leaves NA throughout.

    CSVLogger writes val_accuracy and val_loss as NA when there is no validation set.
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = {key: [row[key] for row in rows] for key in (rows[0] if rows else {}) if key != "epoch"}
    return {key: [float("nan") if value == "NA" else float(value) for value in values]
            for key, values in columns.items() if any(value != "NA" for value in values)}


# ----------------------------------------------------------------------------- the run

def new_run_dir(runs_dir):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(runs_dir) / stamp
    path.mkdir(parents=True, exist_ok=False)
    return path


def latest_resumable_run(runs_dir):
    runs = sorted(p for p in Path(runs_dir).glob("*") if (p / STATE_FILE).is_file() and (p / LAST_CHECKPOINT).is_file())
    if not runs:
        raise UserError(f"--resume: no run with a checkpoint under {runs_dir}; start one without --resume")
    return runs[-1]


def load_state(run_dir):
    path = Path(run_dir) / STATE_FILE
    if not (path.is_file() and (Path(run_dir) / LAST_CHECKPOINT).is_file()):
        raise UserError(f"--resume: {run_dir} has no {STATE_FILE} and {LAST_CHECKPOINT} to resume from")
    return json.loads(path.read_text())


def train(data_dir, model_path, recipe, runs_dir=config.DEFAULT_RUNS_DIR, run_dir=None, resume=False,
          epochs_override=None, tta_override=None, limit=None, log=print):
    """Train (or resume), evaluate on the test set, save the model and its evidence; return the info."""
    import keras

    from emotion_analyzer.classify import tta_name
    from emotion_analyzer.device import describe_device
    from emotion_analyzer.model import (build_model, fold_batch_norm, load_keras_file, plot_architecture,
                                       save_model_atomic, save_model_info)
    from emotion_analyzer.prep import load_prepared

    if resume:
        run_dir = Path(run_dir) if run_dir else latest_resumable_run(runs_dir)
        state = load_state(run_dir)
        recipe = Recipe(**{**RECIPE_BEFORE_OPTION_EXISTED, **state["recipe"]})
        if epochs_override is not None:
            recipe.epochs = epochs_override
        # Test-time views only change the evaluation, so a finished run can be evaluated again with others.
        recipe.tta = tta_name(tta_override if tta_override is not None else recipe.tta)
        state["recipe"] = asdict(recipe)
        limit = state.get("limit")  # the same images as the interrupted run, or the validation split shifts
    validate_recipe(recipe)

    x_train, y_train, x_test, y_test, categories, leak = load_prepared(data_dir)
    x_train, y_train, x_test, y_test = check_arrays(x_train, y_train, x_test, y_test, categories, data_dir)
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    train_idx, val_idx = stratified_validation_split(y_train, recipe.val_split, recipe.seed)
    validating = len(val_idx) > 0
    if recipe.val_split and not validating:
        raise UserError(f"{data_dir}: too few training images ({len(y_train)}) to hold out a validation set")

    if not resume:
        run_dir = Path(run_dir) if run_dir else new_run_dir(runs_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        state = {"recipe": asdict(recipe), "epochs_done": 0, "best_val_accuracy": -1.0, "best_epoch": 0,
                 "labels": categories, "limit": limit, "started": datetime.datetime.now().isoformat(timespec="seconds")}
        write_json_atomic(run_dir / STATE_FILE, state)
    elif state["epochs_done"] >= recipe.epochs:
        log(f"{run_dir}: already trained {state['epochs_done']} epochs; pass --epochs N (more) to continue")

    keras.utils.set_random_seed(recipe.seed + state["epochs_done"])
    num_classes = len(categories)
    log(f"device: {describe_device()}; run folder: {run_dir}")
    log(f"train {len(train_idx):,}, validation {len(val_idx):,}, test {len(y_test):,} images; {num_classes} emotions:"
        f" {', '.join(categories)}")
    if not validating:
        log("no validation set: no early stopping; the model saved is the last epoch's")

    strategy = make_strategy(recipe.strategy)
    with strategy.scope():
        if resume:
            model = load_keras_file(run_dir / LAST_CHECKPOINT)
            so_far = (f"best validation accuracy so far {state['best_val_accuracy']:.4f}" if validating
                      else "no validation")
            log(f"resuming after epoch {state['epochs_done']} ({so_far})")
        else:
            keras.config.set_dtype_policy(PRECISIONS[recipe.precision])
            try:
                model = build_model((config.IMAGE_SIZE, config.IMAGE_SIZE, 1), num_classes, recipe.padding,
                                    recipe.scaling, recipe.init, recipe.batch_norm)
            finally:
                keras.config.set_dtype_policy("float32")
            compile_model(model, recipe, len(train_idx))

    train_data = make_dataset(x_train[train_idx], y_train[train_idx], recipe, num_classes, training=True)
    val_data = None
    if validating:
        val_data = make_dataset(x_train[val_idx], y_train[val_idx], recipe, num_classes, training=False)
    class_weight = balanced_class_weights(y_train[train_idx], num_classes) if recipe.class_weight else None
    started = datetime.datetime.now()
    if state["epochs_done"] < recipe.epochs:
        model.fit(train_data, validation_data=val_data, epochs=recipe.epochs, initial_epoch=state["epochs_done"],
                  class_weight=class_weight, shuffle=False, verbose=1 if sys.stdout.isatty() else 2,
                  callbacks=make_callbacks(recipe, run_dir, state, resuming=resume, validating=validating))
    seconds = (datetime.datetime.now() - started).total_seconds()
    history = read_history(run_dir / HISTORY_FILE)
    if history and not np.isfinite(history["loss"][-1]):
        raise UserError(f"the loss became NaN in epoch {len(history['loss'])}; the last good checkpoint is"
                        f" {run_dir / LAST_CHECKPOINT} (epoch {state['epochs_done']}). Lower --lr and --resume")
    if not (run_dir / BEST_CHECKPOINT).is_file():
        raise UserError(f"{run_dir}: no epoch finished with a finite loss, so there is no model to save; lower --lr")

    best = fold_batch_norm(load_keras_file(run_dir / BEST_CHECKPOINT),
                           build_model((config.IMAGE_SIZE, config.IMAGE_SIZE, 1), num_classes, recipe.padding,
                                       recipe.scaling, recipe.init))
    metrics = evaluate(best, x_test, y_test, categories, leak, recipe.tta)
    metrics["best_epoch"] = state["best_epoch"]
    metrics["best_val_accuracy"] = state["best_val_accuracy"] if validating else None

    info = {
        "labels": list(categories),
        "input_shape": [config.IMAGE_SIZE, config.IMAGE_SIZE, 1],
        "input_range": "uint8 0-255 grayscale; the model normalises",
        "tta": recipe.tta,
        "recipe": asdict(recipe),
        "dataset": {"data_dir": config.portable_path(data_dir), "train": int(len(train_idx)),
                    "validation": int(len(val_idx)), "test": int(len(y_test))},
        "test_metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"},
        "epochs_trained": state["epochs_done"],
        "training_seconds_this_session": round(seconds, 1),
        "run_dir": config.portable_path(run_dir),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    # The model first, then evidence: a plotting error must never cost a training run.
    model_path = Path(model_path)
    save_model_atomic(best, model_path, include_optimizer=False)
    save_model_info(model_path, info)
    write_evidence(run_dir, metrics, history, categories)
    write_evidence(model_path.parent, metrics, history, categories, prefix=f"{model_path.stem}_")
    plot_architecture(best, model_path.parent / "model_architecture.png")
    for line in format_metrics(metrics):
        log(line)
    log(f"saved {model_path} and {config.model_info_path(model_path).name}; evidence in {run_dir}")
    return info
