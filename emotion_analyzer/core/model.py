"""The original EmotionAnalyzer CNN, plus saving and loading a model with the facts that travel with it."""

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.errors import UserError
from emotion_analyzer.common.fileio import atomic_path, write_json_atomic


def rescale_layer(scale, offset):
    """A builder of the fixed rescaling of 0-255 pixels by `scale`, then `offset`."""
    def build(name):
        from keras import layers

        return layers.Rescaling(scale, offset, name=name)
    return build


def standardize_layer(name):
    """Per-image standardisation: layer normalisation over the whole image, with no weights."""
    from keras import layers

    # Its epsilon, in squared grey levels, keeps a flat crop's noise from being blown up to full
    # contrast (a face's variance is in the thousands) and maps a blank crop to zeros instead of
    # dividing by zero.
    return layers.LayerNormalization(axis=(1, 2, 3), epsilon=1.0, center=False, scale=False, name=name)


INPUT_SCALINGS = {
    # name: builder of the model's first layer, which normalises 0-255 pixels
    "unit": rescale_layer(1.0 / 255, 0.0),         # 0..1, as the original
    "center": rescale_layer(1.0 / 127.5, -1.0),    # -1..1: zero-centred inputs train faster without batch norm
    "standardize": standardize_layer,               # per image: mean 0, standard deviation 1
}


# What a model reads, one fact, recorded in its JSON as `input` (input_contract) and in the name of its
# input layer, where a Keras user looking at model.summary() sees it: 48x48 uint8 grayscale faces,
# histogram-equalized (cv2.equalizeHist) first when `equalized`.
EQUALIZER = "cv2.equalizeHist on each 48x48 uint8 face"


def input_contract(equalized):
    """The `input` record of a model's JSON: what the saved model expects to be given."""
    return {"shape": list(config.FACE_SHAPE), "dtype": "uint8", "range": "0-255 grayscale; the model normalises",
            "equalized": bool(equalized), "equalizer": EQUALIZER if equalized else None}


def input_layer_name(equalized):
    return "equalized_uint8_face" if equalized else "uint8_face"


def reads_equalized(info):
    """Whether the model of JSON `info` reads histogram-equalized faces; models saved before the
    `input` record said so in each detector's framing, or in their recipe."""
    if "input" in info:
        return bool(info["input"].get("equalized"))
    framings = list(info.get("framings", {}).values()) + ([info["framing"]] if "framing" in info else [])
    return any(bool(framing.get("equalize")) for framing in framings) or bool(info.get("recipe", {}).get("equalize"))


def as_the_model_reads(faces, info):
    """uint8 faces (N, 48, 48, 1) as the model of JSON `info` reads them: equalized when it reads so."""
    from emotion_analyzer.core.images import equalize

    return equalize(faces) if reads_equalized(info) else faces


def build_model(input_shape, num_classes, scaling="unit", batch_norm=False, equalized=False):
    """The original architecture; it takes raw 0-255 pixels and normalises them itself.

    Conv 50 -> Conv 75 -> MaxPool -> Conv 125 -> MaxPool (3x3, ReLU) -> Dense 500 (dropout 0.3)
    -> Dense 250 (dropout 0.2) -> softmax over `num_classes` emotions. `scaling` changes
    how inputs are normalised, not the layers; `equalized` names the input layer for the faces it is
    trained on (input_layer_name). `batch_norm` puts a batch
    normalisation between each conv or dense layer and its ReLU, for training: `fold_batch_norm`
    folds it back into the layer it follows, so the model shipped has the original's layers.
    The output layer computes in float32 under any dtype policy (mixed bfloat16 training).
    """
    import keras
    from keras import layers

    if num_classes < 2:
        raise UserError(f"num_classes={num_classes}: a classifier needs at least two emotions")
    if scaling not in INPUT_SCALINGS:
        raise UserError(f"input scaling '{scaling}': expected one of {', '.join(INPUT_SCALINGS)}")

    def with_relu(layer_class, name, *args, **kwargs):
        def apply(x):
            if not batch_norm:
                return layer_class(*args, activation="relu", name=name, **kwargs)(x)
            x = layer_class(*args, use_bias=False, name=name, **kwargs)(x)
            x = layers.BatchNormalization(name=f"{name}{BATCH_NORM_SUFFIX}")(x)
            return layers.Activation("relu", name=f"{name}_relu")(x)
        return apply

    inputs = keras.Input(shape=input_shape, name=input_layer_name(equalized))
    x = INPUT_SCALINGS[scaling](f"scale_{scaling}")(inputs)
    x = with_relu(layers.Conv2D, "conv_50", 50, 3, padding="valid")(x)
    x = with_relu(layers.Conv2D, "conv_75", 75, 3, padding="valid")(x)
    x = layers.MaxPooling2D(2, name="pool_1")(x)
    x = with_relu(layers.Conv2D, "conv_125", 125, 3, padding="valid")(x)
    x = layers.MaxPooling2D(2, name="pool_2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = with_relu(layers.Dense, "dense_500", 500)(x)
    x = layers.Dropout(0.3, name="dropout_03")(x)
    x = with_relu(layers.Dense, "dense_250", 250)(x)
    x = layers.Dropout(0.2, name="dropout_02")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="emotion_cnn")


BATCH_NORM_SUFFIX = "_bn"


def fold_batch_norm(trained, plain):
    """Copy `trained`'s weights into `plain`, the same model built without batch normalisation and in
    float32, folding each normalisation into the conv or dense layer before it: at inference it is a
    fixed scale and shift per channel, so the kernel takes the scale and the bias the shift."""
    for layer in plain.layers:
        if not layer.weights:
            continue
        weights = trained.get_layer(layer.name).get_weights()
        norm_name = layer.name + BATCH_NORM_SUFFIX
        if norm_name not in {candidate.name for candidate in trained.layers}:
            layer.set_weights(weights)
            continue
        norm = trained.get_layer(norm_name)
        gamma, beta, mean, variance = norm.get_weights()
        scale = gamma / np.sqrt(variance + norm.epsilon)
        layer.set_weights([weights[0] * scale, beta - mean * scale])  # the kernel's last axis is its outputs
    return plain


def save_model_atomic(model, path):
    """Save a .keras file via a temporary name."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def save_model_info(model_path, info):
    write_json_atomic(config.model_info_path(model_path), info)


def save_trained_model(model, model_path, info):
    """The model and its JSON, each atomically (the caller holds signals back so both are written)."""
    save_model_atomic(model, model_path)
    save_model_info(model_path, info)


def load_model_info(model_path):
    """The JSON beside a model: labels in output order, input size, metrics."""
    path = config.model_info_path(model_path)
    if not path.is_file():
        raise UserError(f"{path} not found: a model needs its JSON (labels) beside it; retrain with training.py")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); retrain with training.py") from None
    problem = info_problem(info) if isinstance(info, dict) else "not a JSON object"
    if problem:
        raise UserError(f"{path}: {problem}; retrain with training.py or restore the file from git")
    return info


# A label is printed to the terminal and written into CSV headers: a short name of printable characters.
MAX_LABEL_LENGTH = 40
# The framing values a crop can be made with: a margin of up to a whole box on each side, an offset of
# up to a whole box's height.
MARGIN_RANGE, OFFSET_RANGE = (0.0, 1.0), (-1.0, 1.0)


def info_problem(info):
    """What is wrong with a model's JSON from elsewhere (labels, framings, input record), or None."""
    labels = info.get("labels")
    if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) for x in labels)):
        return "'labels' must list the emotions in output order"
    bad = [label for label in labels if not label.strip() or not label.isprintable() or len(label) > MAX_LABEL_LENGTH]
    if bad:
        return (f"label {bad[0]!r} is not a name (empty, over {MAX_LABEL_LENGTH} characters, or with control"
                " characters)")
    if len(set(labels)) != len(labels):
        return f"label {next(x for x in labels if labels.count(x) > 1)!r} is listed twice"
    framings = dict(info.get("framings", {}))
    if "framing" in info:
        framings["framing"] = info["framing"]
    for name, framing in framings.items():
        if not isinstance(framing, dict):
            return f"framing {name!r} must be an object with margin and offset"
        for key, (low, high) in (("margin", MARGIN_RANGE), ("offset", OFFSET_RANGE)):
            value = framing.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                return f"framing {name!r}: {key} {value!r} is not a number from {low} to {high}"
    record = info.get("input", {})
    if not isinstance(record, dict) or not isinstance(record.get("equalized", False), bool):
        return "'input' must say whether the model reads equalized faces (\"equalized\": true or false)"
    return None


def check_model_file(model_path):
    """(`model_path` as a Path, its JSON), checked to be a .keras file with its JSON beside it, without
    TensorFlow."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise UserError(f"model {model_path} not found: train one with `python training.py --model {model_path}`"
                        " or use the shipped res/emotion_model.keras")
    if not zipfile.is_zipfile(model_path):
        raise UserError(f"model {model_path} is not a .keras model (a .keras file is a zip archive): give the"
                        " .keras file training.py saved, or restore it from git")
    return model_path, load_model_info(model_path)


def load_trained_model(model_path):
    """(model, info) for a .keras file and its JSON; errors say how to get a model."""
    from emotion_analyzer.common.device import start_tensorflow

    start_tensorflow()  # quietly, before Keras imports it
    import keras

    model_path, info = check_model_file(model_path)
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged zip or config
        raise UserError(f"model {model_path} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]});"
                        " retrain it with training.py or restore it from git") from None
    check_input_shape(model, model_path)
    outputs = model.output_shape[-1]
    if outputs != len(info["labels"]):
        raise UserError(f"{model_path}: the model has {outputs} outputs but its JSON lists"
                        f" {len(info['labels'])} labels")
    return model, info


def check_input_shape(model, model_path):
    """Refuse a model that does not read 48x48 grayscale faces, the crops the analyzer makes."""
    size = config.IMAGE_SIZE
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if shape != config.FACE_SHAPE:
        raise UserError(f"{model_path}: the model takes input of shape {shape or model.input_shape}, but the analyzer"
                        f" reads {size}x{size} grayscale faces, shape {config.FACE_SHAPE}; train one with"
                        " training.py")


def describe_layers(model):
    """(name, kind, output shape, parameters) per layer, for the architecture diagram."""
    rows = []
    for layer in model.layers:
        shape = getattr(layer, "output", None)
        shape = tuple(shape.shape[1:]) if shape is not None else ()
        rows.append((layer.name, type(layer).__name__, shape, layer.count_params()))
    return rows


def plot_architecture(model, path):
    """A layer-by-layer diagram drawn with matplotlib, so Graphviz is not needed."""
    from emotion_analyzer.common.plots import plt, save_figure

    rows = describe_layers(model)
    colours = {"Conv2D": "#8ecae6", "MaxPooling2D": "#ffb703", "Dense": "#90be6d", "Dropout": "#dddddd",
               "InputLayer": "#f4a261", "Rescaling": "#f4a261", "LayerNormalization": "#f4a261",
               "BatchNormalization": "#f4a261", "Flatten": "#cdb4db"}
    height = 0.55 * len(rows) + 0.8
    fig, ax = plt.subplots(figsize=(6.5, height))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, len(rows))
    ax.axis("off")
    for i, (name, kind, shape, params) in enumerate(rows):
        y = len(rows) - i - 0.5
        box = plt.Rectangle((0.05, y - 0.35), 0.9, 0.7, facecolor=colours.get(kind, "#eeeeee"), edgecolor="black")
        ax.add_patch(box)
        ax.text(0.08, y, f"{kind}  ({name})", va="center", fontsize=9, weight="bold")
        ax.text(0.92, y, f"{'x'.join(str(s) for s in shape)}   {params:,} params", va="center", ha="right", fontsize=8)
        if i:
            ax.annotate("", (0.5, y + 0.35), (0.5, y + 0.65), arrowprops={"arrowstyle": "->"})
    total = sum(r[3] for r in rows)
    ax.set_title(f"{model.name}: {total:,} parameters ({math.ceil(total * 4 / 2**20)} MB float32)")
    save_figure(fig, path)
