"""Progressive self-knowledge distillation (Kim et al., ICCV 2021), for `training.py --self-distill W`.

Each training image's target becomes (1 - w) x its label + w x the model's own prediction for that
image in the previous epoch, with w rising linearly from 0 in the first epoch to W in the last. The
previous epoch's model is a softer, steadier teacher than a one-hot label, and it can disagree with a
wrong one: FER2013's labels are noisy, and every regulariser tried so far restrained the fitting
without lifting validation accuracy.

The predictions cost nothing extra: the loss reads each image's previous prediction from a table and
writes the one the training step just made. To find the rows, a training batch's labels carry each
image's index in an extra last column; validation labels have no such column, so the same loss and
accuracy serve both and validation never touches the table.

Imported by training code, and by `model.load_keras_file` so a run's checkpoints find the loss
(it imports Keras, which both have loaded anyway).
"""

import keras
import numpy as np

from emotion_analyzer.errors import UserError
from emotion_analyzer.fileio import atomic_path

TABLE_FILE = "self_distill_predictions.npy"


@keras.saving.register_keras_serializable(package="emotion_analyzer")
class SelfDistillingCrossEntropy(keras.losses.Loss):
    """Cross-entropy against the label mixed with the previous epoch's prediction (see the module)."""

    def __init__(self, num_images, num_classes, label_smoothing=0.0, name="self_distilling_crossentropy",
                 **kwargs):
        import tensorflow as tf

        super().__init__(name=name, **kwargs)
        self.num_images = int(num_images)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)
        self.predictions = tf.Variable(tf.zeros([self.num_images, self.num_classes]), trainable=False,
                                       name="previous_predictions")
        self.weight = tf.Variable(0.0, trainable=False, name="self_distill_weight")

    def call(self, y_true, y_pred):
        import tensorflow as tf

        labels = y_true[:, :self.num_classes]
        if y_true.shape[-1] == self.num_classes + 1:  # a training batch: the last column holds the indices
            index = tf.cast(y_true[:, -1], tf.int32)
            labels = (1.0 - self.weight) * labels + self.weight * tf.gather(self.predictions, index)
            self.predictions.scatter_nd_update(index[:, tf.newaxis], tf.stop_gradient(y_pred))
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_images": self.num_images, "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="emotion_analyzer")
def label_accuracy(y_true, y_pred, num_classes):
    """Accuracy against the one-hot label, whether or not an index column follows it."""
    return keras.metrics.categorical_accuracy(y_true[:, :num_classes], y_pred)


def make_loss_and_accuracy(num_images, num_classes, label_smoothing):
    loss = SelfDistillingCrossEntropy(num_images, num_classes, label_smoothing)
    accuracy = keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy", num_classes=num_classes)
    return loss, accuracy


def distill_weight(final_weight, epoch, epochs):
    """The prediction's share in epoch `epoch` (from 0): 0 in the first epoch, `final_weight` in the last."""
    return final_weight * epoch / max(epochs - 1, 1)


def make_self_distill_callback(final_weight, epochs, run_dir, resuming):
    """Set each epoch's weight, save the table after each epoch (for --resume) and load it on resume."""
    table_path = run_dir / TABLE_FILE

    class SelfDistill(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if resuming:
                self.model.loss.predictions.assign(load_table(table_path, self.model.loss))

        def on_epoch_begin(self, epoch, logs=None):
            self.model.loss.weight.assign(distill_weight(final_weight, epoch, epochs))

        def on_epoch_end(self, epoch, logs=None):
            if not np.isfinite((logs or {}).get("loss", np.nan)):
                return  # a diverged epoch's predictions must not replace the last good table
            with atomic_path(table_path) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, self.model.loss.predictions.numpy())

    return SelfDistill()


def load_table(path, loss):
    if not path.is_file():
        raise UserError(f"{path} is missing: this run's previous predictions are gone, so --self-distill cannot"
                        " resume it; start a new run")
    table = np.load(path, allow_pickle=False)
    expected = (loss.num_images, loss.num_classes)
    if table.shape != expected or table.dtype != np.float32:
        raise UserError(f"{path}: expected float32 predictions of shape {expected}, found {table.dtype}"
                        f" {table.shape}; start a new run")
    return table
