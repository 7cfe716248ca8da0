"""All faces of a frame classified in one compiled call.

Three engines run the same model: on the CPU a TensorFlow Lite copy of it with its weights stored as
int8 (XNNPACK's int8 kernels; speed and agreement with float32 measured by bench_engines.py, in
docs/benchmarks.md), float32 TensorFlow Lite or TensorFlow when asked, and TensorFlow on a GPU. All
take the uint8 batch and return probabilities; test-time views (the mirror image, small shifts) are
made and averaged inside the call. Training evaluates with the same function on TensorFlow, so the
accuracy it reports is the float32 model's.
"""

import os
import warnings

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.device import gpu_names, quiet_native_log
from emotion_analyzer.errors import UserError

ENGINES = ("auto", "tflite-int8", "tflite", "tf")

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

# TensorFlow Lite's threads: one per core, at most this many; a batch of a few 48x48 faces is too small
# to share among more (and on this project's 2-core machines the detector needs the other core).
MAX_TFLITE_THREADS = 4

# TensorFlow's compiled function is traced once per batch shape, so batches are padded up to one of
# these sizes; small counts stay exact because they are the common case.
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
WARM_UP_BATCHES = BATCH_BUCKETS[:6]


def bucket_size(n):
    for size in BATCH_BUCKETS:
        if n <= size:
            return size
    return n


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


class TensorFlowEngine:
    """The model run by TensorFlow (GPU when there is one), traced once per batch bucket."""

    name = "TensorFlow"

    def __init__(self, probabilities):
        self._probabilities = probabilities

    def __call__(self, batch):
        n = len(batch)
        padded = bucket_size(n)
        if padded != n:
            batch = np.concatenate([batch, np.zeros((padded - n,) + batch.shape[1:], batch.dtype)])
        return self._probabilities(batch).numpy()[:n]


def to_tflite(model, probabilities, int8_weights=False):
    """The probability function converted to a TensorFlow Lite flatbuffer (weights frozen in), with
    `int8_weights` quantized per channel to int8 (activations stay float, so no calibration data)."""
    import tensorflow as tf

    size = config.IMAGE_SIZE
    concrete = probabilities.get_concrete_function(tf.TensorSpec([None, size, size, 1], tf.uint8))
    # The converter freezes the variables its trackable object holds; Keras 3 keeps the
    # TensorFlow variables one level down, so hand them over in a plain module.
    holder = tf.Module()
    holder.variables_ = [weight.value for weight in model.weights]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    if int8_weights:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range quantization
    return converter.convert()


class TFLiteEngine:
    """The model as TensorFlow Lite on the CPU; the input is resized to each batch (cheap once warm)."""

    def __init__(self, flatbuffer, threads, name="TensorFlow Lite"):
        import tensorflow as tf

        with warnings.catch_warnings():
            # TF 2.20+ points to the separate ai-edge-litert package; the bundled interpreter is the same.
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            self._interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None
        self.threads = threads
        self.name = name

    def __call__(self, batch):
        if len(batch) != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(batch)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(batch, np.uint8))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def make_engine(model, tta="none", engine="auto", log=None):
    """The fastest engine for this machine: TensorFlow on a GPU, TensorFlow Lite with int8 weights on the CPU."""
    import tensorflow as tf

    if engine not in ENGINES:
        raise UserError(f"--engine {engine}: expected one of {', '.join(ENGINES)}")
    probabilities = probability_function(model, tta)
    if engine == "tf" or (engine == "auto" and gpu_names()):
        return TensorFlowEngine(probabilities)
    if not hasattr(tf, "lite"):
        if engine != "auto":
            raise UserError(f"--engine {engine}: this TensorFlow has no tf.lite; use --engine tf")
        return TensorFlowEngine(probabilities)
    int8_weights = engine in ("auto", "tflite-int8")
    try:
        with quiet_native_log():  # the converter logs each step of its SavedModel round trip
            flatbuffer = to_tflite(model, probabilities, int8_weights)
    except Exception as exc:  # the converter raises many kinds of errors for ops it cannot handle
        if engine != "auto":
            raise UserError(f"--engine {engine}: the model cannot be converted ({type(exc).__name__}: {exc});"
                            " use --engine tf") from None
        if log:
            log(f"TensorFlow Lite conversion failed ({type(exc).__name__}); classifying with TensorFlow")
        return TensorFlowEngine(probabilities)
    return TFLiteEngine(flatbuffer, threads=max(1, min(os.cpu_count() or 1, MAX_TFLITE_THREADS)),
                        name="TensorFlow Lite, int8 weights" if int8_weights else "TensorFlow Lite")


class EmotionClassifier:
    """Classifies a uint8 batch of faces in one call of the chosen engine, averaged over `tta` views."""

    def __init__(self, model, labels, tta="none", engine="auto", log=None):
        self.labels = list(labels)
        self.tta = tta_name(tta)
        self._engine = make_engine(model, self.tta, engine, log)

    @property
    def engine_name(self):
        threads = getattr(self._engine, "threads", None)
        return self._engine.name + (f" ({threads} threads)" if threads else "")

    def classify(self, batch):
        """(N, len(labels)) probabilities for an (N, 48, 48, 1) uint8 batch."""
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self._engine(batch)

    def warm_up(self):
        """Trace or size the common batch sizes before the first frame, so no frame pays for it."""
        size = config.IMAGE_SIZE
        with quiet_native_log():  # the first call creates TensorFlow Lite's XNNPACK delegate, which says so
            for n in reversed(WARM_UP_BATCHES):
                self.classify(np.zeros((n, size, size, 1), np.uint8))
