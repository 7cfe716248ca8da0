import zipfile

import numpy as np
import pytest

from emotion_analyzer.errors import UserError


def test_original_architecture():
    from emotion_analyzer.core.model import build_model

    model = build_model((48, 48, 1), 6)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    drops = [layer for layer in model.layers if type(layer).__name__ == "Dropout"]
    assert [c.filters for c in convs] == [50, 75, 125] and all(c.kernel_size == (3, 3) for c in convs)
    assert [d.units for d in dense] == [500, 250, 6] and [d.rate for d in drops] == [0.3, 0.2]
    assert model.count_params() == 500 + 33_825 + 84_500 + 6_250_500 + 125_250 + 1_506


@pytest.mark.parametrize("scaling, low, high", [("unit", 0.0, 1.0), ("center", -1.0, 1.0)])
def test_input_scaling_lives_in_the_model_and_keeps_the_architecture(scaling, low, high):
    import keras

    from emotion_analyzer.core.model import build_model

    model = build_model((48, 48, 1), 6, scaling=scaling)
    assert model.count_params() == build_model((48, 48, 1), 6).count_params()
    scaler = keras.Model(model.input, model.layers[1].output)
    pixels = np.stack([np.zeros((48, 48, 1)), np.full((48, 48, 1), 255.0)]).astype("float32")
    scaled = scaler.predict(pixels, verbose=0)
    np.testing.assert_allclose([scaled[0].min(), scaled[1].max()], [low, high], atol=1e-6)


def test_standardized_input_ignores_brightness_and_contrast_and_survives_save_load_and_tflite(tmp_path):
    import keras

    from emotion_analyzer.core.model import build_model

    keras.utils.set_random_seed(1)
    model = build_model((48, 48, 1), 6, scaling="standardize")
    assert model.count_params() == build_model((48, 48, 1), 6).count_params()
    face = np.random.default_rng(2).integers(60, 180, (48, 48, 1)).astype("float32")
    darker_flatter = 0.5 * face + 10
    blank = np.full((48, 48, 1), 200.0, dtype="float32")
    batch = np.stack([face, darker_flatter, blank])
    scaler = keras.Model(model.input, model.get_layer("scale_standardize").output)
    scaled = scaler.predict(batch, verbose=0).reshape(3, -1)
    np.testing.assert_allclose(scaled[:2].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(scaled[:2].std(axis=1), 1, atol=1e-2)
    np.testing.assert_allclose(scaled[0], scaled[1], atol=1e-2)
    np.testing.assert_array_equal(scaled[2], 0)  # no division by a zero spread
    np.testing.assert_allclose(model.predict(batch[:1], verbose=0), model.predict(batch[1:2], verbose=0), atol=1e-3)

    # Built from stock layers only: it loads without custom objects, and TensorFlow Lite agrees.
    assert_survives_save_load_and_tflite(model, batch, tmp_path)


def assert_survives_save_load_and_tflite(model, batch, tmp_path):
    from emotion_analyzer.analysis.classify import EmotionClassifier
    from emotion_analyzer.core.model import input_contract, load_trained_model, save_model_atomic, save_model_info

    path = tmp_path / "model.keras"
    save_model_atomic(model, path)
    save_model_info(path, {"labels": [f"e{i}" for i in range(6)], "input": input_contract(equalized=False)})
    loaded, info = load_trained_model(path)
    expected = model.predict(batch, verbose=0)
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), expected, atol=1e-6)
    lite = EmotionClassifier(path, info["labels"], engine="tflite").classify(batch.astype(np.uint8))
    np.testing.assert_allclose(lite, model.predict(batch.astype(np.uint8).astype("float32"), verbose=0), atol=1e-5)


def test_unknown_scaling_is_refused():
    from emotion_analyzer.errors import UserError
    from emotion_analyzer.core.model import build_model

    with pytest.raises(UserError, match="input scaling 'pm1'"):
        build_model((48, 48, 1), 6, scaling="pm1")


def test_batch_norm_folds_into_the_layers_it_follows(tmp_path):
    import keras

    from emotion_analyzer.core.model import build_model, fold_batch_norm

    keras.utils.set_random_seed(3)
    trained = build_model((48, 48, 1), 6, scaling="standardize", batch_norm=True)
    assert sum(type(layer).__name__ == "BatchNormalization" for layer in trained.layers) == 5
    # Give every normalisation statistics and weights far from the identity, as training would.
    rng = np.random.default_rng(4)
    for layer in trained.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.2, 3, n)])
    plain = fold_batch_norm(trained, build_model((48, 48, 1), 6, scaling="standardize"))
    # The folded model has exactly the original's layers and parameter count...
    assert [type(layer).__name__ for layer in plain.layers] == \
        [type(layer).__name__ for layer in build_model((48, 48, 1), 6, scaling="standardize").layers]
    assert plain.count_params() == build_model((48, 48, 1), 6).count_params()
    # ...and computes what the normalised model computes at inference.
    faces = rng.integers(0, 256, (16, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(plain.predict(faces, verbose=0), trained.predict(faces, verbose=0), atol=1e-5)
    assert_survives_save_load_and_tflite(plain, faces, tmp_path)


def test_mixed_bfloat16_computes_in_bfloat16_with_a_float32_output():
    import keras

    from emotion_analyzer.core.model import build_model

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model((48, 48, 1), 6, scaling="standardize", batch_norm=True)
    finally:
        keras.config.set_dtype_policy("float32")
    conv = model.get_layer("conv_50")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert model.output.dtype == "float32"  # softmax and loss in float32


@pytest.mark.parametrize("change, message", [
    ({"labels": ["happy", "happy", "sad", "fear", "angry", "neutral"]}, "label 'happy' is listed twice"),
    ({"labels": ["", "happy", "sad", "fear", "angry", "neutral"]}, "label '' is not a name"),
    ({"labels": ["\x1b[2J\x1b[31mhappy", "b", "c", "d", "e", "f"]}, "with control characters"),
    ({"labels": ["nul\x00", "b", "c", "d", "e", "f"]}, "with control characters"),
    ({"framings": {"haar": {"margin": 1e9, "offset": 0}}}, "framing 'haar': margin 1000000000.0 is not a number"),
    ({"framings": {"mtcnn": {"margin": "wide"}}}, "framing 'mtcnn': margin 'wide' is not a number"),
    ({"framings": {"haar": {"margin": 0.1, "offset": -5}}}, "offset -5 is not a number from -1.0 to 1.0"),
    ({"framing": "wide"}, "framing 'framing' must be an object"),
    ({"input": {"equalized": "yes"}}, "'input' must say whether the model reads equalized faces"),
])
def test_a_model_json_from_elsewhere_is_checked_on_load_and_refused_in_one_line(tmp_path, change, message):
    import json

    from emotion_analyzer.core.model import check_model_file, input_contract

    model = tmp_path / "model.keras"
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("config.json", "{}")
    info = {"labels": ["angry", "fear", "happy", "neutral", "sad", "surprise"], "input": input_contract(True)}
    model.with_suffix(".json").write_text(json.dumps({**info, **change}))
    with pytest.raises(UserError) as refused:
        check_model_file(model)
    assert message in str(refused.value) and "model.json" in str(refused.value) and "\n" not in str(refused.value)
    assert "\x1b" not in str(refused.value) and "\x00" not in str(refused.value)  # shown escaped, never raw
