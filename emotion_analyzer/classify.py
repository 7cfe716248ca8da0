"""All faces of a frame classified in one compiled call."""

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.detect import clamp_box
from emotion_analyzer.images import to_model_input

# Batches are padded up to one of these sizes so the compiled function is traced a handful of
# times at most, instead of once for every new number of faces; small counts stay exact because
# they are the common case and padding them would waste the most.
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def crop_faces(gray, boxes):
    """(N, 48, 48, 1) uint8 crops of the boxes clamped to the frame (faces cut by the edge), with
    the indices of the boxes used and the clamped boxes; boxes wholly outside the frame are left out."""
    height, width = gray.shape[:2]
    crops, used, clamped_boxes = [], [], []
    for index, box in enumerate(boxes):
        clamped = clamp_box(box, width, height)
        if clamped is None:
            continue
        x, y, w, h = clamped
        crops.append(to_model_input(gray[y:y + h, x:x + w]))
        used.append(index)
        clamped_boxes.append(clamped)
    size = config.IMAGE_SIZE
    batch = np.stack(crops)[..., np.newaxis] if crops else np.zeros((0, size, size, 1), np.uint8)
    return batch, used, clamped_boxes


def bucket_size(n):
    for size in BATCH_BUCKETS:
        if n <= size:
            return size
    return n


class EmotionClassifier:
    """Wraps a trained model in a tf.function taking a uint8 batch; optional flip averaging."""

    def __init__(self, model, labels, tta_flip=False):
        import tensorflow as tf

        self.labels = list(labels)
        self.tta_flip = tta_flip

        @tf.function(reduce_retracing=True)
        def probabilities(batch):
            x = tf.cast(batch, tf.float32)
            if tta_flip:
                both = model(tf.concat([x, tf.reverse(x, axis=[2])], axis=0), training=False)
                half = tf.shape(x)[0]
                return (both[:half] + both[half:]) / 2
            return model(x, training=False)

        self._probabilities = probabilities

    def classify(self, batch):
        """(N, len(labels)) probabilities for an (N, 48, 48, 1) uint8 batch."""
        n = len(batch)
        if n == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        padded = bucket_size(n)
        if padded != n:
            batch = np.concatenate([batch, np.zeros((padded - n,) + batch.shape[1:], batch.dtype)])
        return self._probabilities(batch).numpy()[:n]

    def warm_up(self):
        """Trace the common batch sizes before the first frame, so no frame pays for compiling."""
        size = config.IMAGE_SIZE
        for n in BATCH_BUCKETS[:6]:
            self.classify(np.zeros((n, size, size, 1), np.uint8))
