"""The test-time views of a face (itself, its mirror, small shifts) and the one function from a uint8
face batch to probabilities averaged over them, which training's evaluation and the analyzer's
engines both run, so the accuracy training reports is what the analyzer reads."""

from emotion_analyzer import config
from emotion_analyzer.errors import UserError

# Test-time augmentation: the views of each face whose probabilities are averaged, as
# (dx, dy, mirrored). Shifts are of TTA_SHIFT pixels, about what light augmentation trains with.
TTA_SHIFT = 2
_SHIFTS = ((0, 0), (TTA_SHIFT, 0), (-TTA_SHIFT, 0), (0, TTA_SHIFT), (0, -TTA_SHIFT))
TTA_VIEWS = {
    "none": ((0, 0, False),),
    "flip": ((0, 0, False), (0, 0, True)),
    "shifts": tuple((dx, dy, mirrored) for mirrored in (False, True) for dx, dy in _SHIFTS),
}

# The views the analyzer averages by default, for photos and videos alike: the face and its mirror,
# chosen on the London portraits; live, benchmarks/bench_analyzer.py still measures over 30 frames/s
# and 15x the original loop with them (docs/real_faces.md).
DEFAULT_TTA = "flip"


def tta_name(tta):
    """`tta`, checked to be a TTA_VIEWS key."""
    if tta not in TTA_VIEWS:
        raise UserError(f"test-time augmentation '{tta}': expected one of {', '.join(TTA_VIEWS)}")
    return tta


def make_views(x, tta):
    """The TTA views of a float image batch, stacked view after view along the batch axis.

    In keras.ops, so a run training on another backend (--strategy multiworker, on JAX) evaluates
    with the same views."""
    from keras import ops

    views = TTA_VIEWS[tta_name(tta)]
    if len(views) == 1:
        return x
    size = config.IMAGE_SIZE
    pad = max(max(abs(dx), abs(dy)) for dx, dy, _ in views)
    # Reflected borders, as the training shifts fill them, so a shifted face has no black edge.
    padded = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect") if pad else x
    out = []
    for dx, dy, mirrored in views:
        view = padded[:, pad + dy:pad + dy + size, pad + dx:pad + dx + size, :]
        out.append(ops.flip(view, axis=2) if mirrored else view)
    return ops.concatenate(out, axis=0)


def probability_function(model, tta="none"):
    """A compiled function from a uint8 face batch to probabilities, averaged over the `tta` views
    (a tf.function on TensorFlow, the analyzer's backend; op by op on JAX, in a multiworker run)."""
    import keras
    from keras import ops

    count = len(TTA_VIEWS[tta_name(tta)])

    def probabilities(batch):
        x = ops.cast(batch, "float32")
        if count == 1:
            return model(x, training=False)
        out = model(make_views(x, tta), training=False)
        return ops.mean(ops.reshape(out, (count, ops.shape(x)[0], -1)), axis=0)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(probabilities, reduce_retracing=True)
    return probabilities
