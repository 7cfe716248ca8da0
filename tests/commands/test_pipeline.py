import numpy as np
import pytest

from emotion_analyzer.errors import UserError
from emotion_analyzer.training.inputs import (check_arrays, ERASE_AREA, erase_rectangles, make_dataset,
                                              stratified_validation_split)
from emotion_analyzer.training.recipe import Recipe


def test_validation_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(6), [100, 50, 200, 80, 60, 40])
    train_idx, val_idx = stratified_validation_split(labels, 0.1, seed=1)
    assert not set(train_idx) & set(val_idx) and len(train_idx) + len(val_idx) == len(labels)
    assert np.bincount(labels[val_idx]).tolist() == [10, 5, 20, 8, 6, 4]


def erased_boxes(before, after):
    """For each image, None if untouched, else (rows, cols, fill) of the changed pixels' bounding box."""
    boxes = []
    for old, new in zip(before[..., 0], after[..., 0]):
        changed = np.argwhere(old != new)
        if not len(changed):
            boxes.append(None)
            continue
        (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0) + 1
        boxes.append((slice(top, bottom), slice(left, right), new[top, left]))
    return boxes


def test_random_erasing_blanks_one_rectangle_to_the_image_mean():
    import keras

    keras.utils.set_random_seed(3)  # the same rectangles every run
    rng = np.random.default_rng(3)
    faces = rng.integers(0, 256, (300, 48, 48, 1)).astype(np.float32)
    assert np.array_equal(erase_rectangles(faces, 0.0).numpy(), faces)

    erased = erase_rectangles(faces, 1.0).numpy()
    for face, after, box in zip(faces, erased, erased_boxes(faces, erased)):
        rows, cols, fill = box
        # The whole box holds the image's mean grey and nothing outside it changed.
        assert fill == pytest.approx(face.mean(), abs=1e-3)
        assert np.all(after[rows, cols] == fill)
        outside = np.ones(face.shape, bool)
        outside[rows, cols] = False
        assert np.array_equal(after[outside], face[outside])
        area = (rows.stop - rows.start) * (cols.stop - cols.start) / 48 ** 2
        assert ERASE_AREA[0] * 0.8 <= area <= ERASE_AREA[1] * 1.2  # rounding to whole pixels

    half = erase_rectangles(faces, 0.5).numpy()
    share = np.mean([box is not None for box in erased_boxes(faces, half)])
    assert 0.38 < share < 0.62  # 300 draws: 0.5 +- 4 standard errors


def test_random_erasing_reaches_training_batches_only(prepared_data):
    from emotion_analyzer.data.prepared import load_prepared

    x = load_prepared(prepared_data)[0].astype(np.float32)
    index = np.arange(len(x))  # as the "labels", to find each shuffled image's original
    recipe = Recipe(augment="none", erase=1.0, label_smoothing=0.0, batch_size=len(x), equalize=False)
    (train_batch, order), = make_dataset(x, index, recipe, 6, training=True)
    (plain_batch, _), = make_dataset(x, index, recipe, 6, training=False)
    assert np.array_equal(plain_batch.numpy(), x)
    originals = x[order.numpy()]
    boxes = erased_boxes(originals, train_batch.numpy())
    assert all(box is not None for box in boxes)
    for face, (_, _, fill) in zip(originals, boxes):
        assert fill == pytest.approx(face.mean(), abs=1e-3)


def prepared_arrays(prepared, relabel):
    from emotion_analyzer.data.prepared import load_prepared

    x, y, x_test, y_test, categories, _ = load_prepared(prepared)
    return x, relabel(y.copy()), x_test, y_test, categories


def test_a_rare_emotion_warns(tmp_path, capsys, prepared_data):
    def three_surprised(y):
        y = np.where(y == 5, 4, y)
        y[:3] = 5
        return y

    check_arrays(*prepared_arrays(prepared_data, three_surprised), tmp_path)
    assert "only 3 training image(s) of 'surprise'" in capsys.readouterr().err


def test_an_emotion_with_no_training_image_is_refused(tmp_path, prepared_data):
    arrays = prepared_arrays(prepared_data, lambda y: np.where(y == 5, 4, y))
    with pytest.raises(UserError, match="no training image of surprise.*--exclude"):
        check_arrays(*arrays, tmp_path)


def test_faces_reach_the_model_equalized_by_the_analyzers_own_function(tmp_path, make_prepared_data):
    from emotion_analyzer.core.images import equalize
    from emotion_analyzer.data.prepared import load_prepared

    x, y = load_prepared(make_prepared_data(tmp_path / "data", n_train=64, n_test=8))[:2]
    x = (x // 2 + 40).astype(np.uint8)  # a flat, dim set, so equalizing changes every face
    recipe = Recipe(augment="none", label_smoothing=0.0, batch_size=16)
    batches = [a.numpy() for a, _ in make_dataset(x, y, recipe, 6, training=False)]
    assert np.array_equal(np.concatenate(batches).astype(np.uint8), equalize(x))
    recipe.equalize = False
    batches = [a.numpy() for a, _ in make_dataset(x, y, recipe, 6, training=False)]
    assert np.array_equal(np.concatenate(batches).astype(np.uint8), x)


def test_the_real_augmentation_degrades_training_faces_only(tmp_path, make_prepared_data):
    from emotion_analyzer.core.images import equalize
    from emotion_analyzer.data.prepared import load_prepared

    x, y = load_prepared(make_prepared_data(tmp_path / "data", n_train=64, n_test=8))[:2]
    recipe = Recipe(augment="real", label_smoothing=0.0, batch_size=64)
    validation = next(iter(make_dataset(x, y, recipe, 6, training=False)))[0].numpy()
    assert np.array_equal(validation.astype(np.uint8), equalize(x))
    trained = next(iter(make_dataset(x, y, recipe, 6, training=True)))[0].numpy()
    assert trained.shape == x.shape and trained.min() >= 0 and trained.max() <= 255
    assert np.array_equal(trained, np.rint(trained))  # whole grey levels, as a crop the analyzer reads
