"""All faces of a frame classified in one compiled call.

Three engines run the same model: on the CPU a TensorFlow Lite copy of it with its weights stored as
int8 (XNNPACK's int8 kernels; speed and agreement with float32 measured by bench_engines.py, in
docs/benchmarks.md), float32 TensorFlow Lite or TensorFlow when asked, and TensorFlow on a GPU. All
take the uint8 batch and return probabilities; test-time views (the mirror image, small shifts) are
made and averaged inside the call. Training evaluates with the same function on TensorFlow, so the
accuracy it reports is the float32 model's.

The TensorFlow Lite copy is converted once per model (engine_cache.py) and run by LiteRT
(ai-edge-litert), so a start with a cached copy and no GPU never imports TensorFlow.
"""

import os
import warnings

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.analysis import engine_cache
from emotion_analyzer.common.device import gpu_present, quiet_native_log
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.views import probability_function, tta_name

ENGINES = ("auto", "tflite-int8", "tflite", "tf")

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


def tflite_interpreter(flatbuffer, threads):
    """LiteRT's interpreter (no TensorFlow import), else TensorFlow's own, which runs the same kernels."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            return tf.lite.Interpreter(model_content=flatbuffer, num_threads=threads)
    return Interpreter(model_content=flatbuffer, num_threads=threads)


class TFLiteEngine:
    """The model as TensorFlow Lite on the CPU; the input is resized to each batch (cheap once warm)."""

    def __init__(self, flatbuffer, threads, name="TensorFlow Lite"):
        self._interpreter = tflite_interpreter(flatbuffer, threads)
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


def make_engine(model_path, tta="none", engine="auto", log=None):
    """The fastest engine for this machine: TensorFlow on a GPU, TensorFlow Lite with int8 weights on the
    CPU (its cached copy when there is one, without loading the Keras model or TensorFlow)."""
    if engine not in ENGINES:
        raise UserError(f"engine {engine}: expected one of {', '.join(ENGINES)}")
    if engine == "tf" or (engine == "auto" and gpu_present()):
        return TensorFlowEngine(probability_function(keras_model(model_path), tta))
    int8_weights = engine in ("auto", "tflite-int8")
    threads = max(1, min(os.cpu_count() or 1, MAX_TFLITE_THREADS))
    name = "TensorFlow Lite, int8 weights" if int8_weights else "TensorFlow Lite"
    cached = engine_cache.cached_copy_path(model_path, tta, int8_weights)
    flatbuffer = engine_cache.read_cached(cached)
    if flatbuffer is not None:
        try:
            return TFLiteEngine(flatbuffer, threads, name)
        except ValueError as exc:  # a damaged copy: converted again below and replaced
            if log:
                log(f"the cached engine {cached} cannot be read ({exc}); converting the model again")
    return converted_engine(model_path, tta, engine, int8_weights, cached, threads, name, log)


def keras_model(model_path):
    from emotion_analyzer.core.model import load_trained_model

    return load_trained_model(model_path)[0]


def converted_engine(model_path, tta, engine, int8_weights, cached, threads, name, log):
    """The model converted to TensorFlow Lite now, and kept in the cache; TensorFlow where it cannot be."""
    model = keras_model(model_path)  # TensorFlow started quietly
    import tensorflow as tf

    probabilities = probability_function(model, tta)
    if not hasattr(tf, "lite"):
        if engine != "auto":
            raise UserError(f"engine {engine}: this TensorFlow has no tf.lite; use --set engine=tf")
        return TensorFlowEngine(probabilities)
    try:
        with quiet_native_log():  # the converter logs each step of its SavedModel round trip
            flatbuffer = to_tflite(model, probabilities, int8_weights)
    except Exception as exc:  # the converter raises many kinds of errors for ops it cannot handle
        if engine != "auto":
            raise UserError(f"engine {engine}: the model cannot be converted ({type(exc).__name__}: {exc});"
                            " use --set engine=tf") from None
        if log:
            log(f"TensorFlow Lite conversion failed ({type(exc).__name__}); classifying with TensorFlow")
        return TensorFlowEngine(probabilities)
    problem = engine_cache.keep(cached, flatbuffer)
    if problem and log:
        log(problem)
    return TFLiteEngine(flatbuffer, threads, name)


class EmotionClassifier:
    """Classifies a uint8 batch of faces in one call of the chosen engine, averaged over `tta` views."""

    def __init__(self, model_path, labels, tta="none", engine="auto", log=None):
        self.labels = list(labels)
        self.tta = tta_name(tta)
        self._engine = make_engine(model_path, self.tta, engine, log)

    @property
    def device(self):
        """Where the CNN runs: 'CPU', or 'GPU (names)'."""
        if isinstance(self._engine, TFLiteEngine):
            return "CPU"
        from emotion_analyzer.common.device import describe_device

        return describe_device()

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
