"""The training input: checks on the prepared arrays, the validation split, and the tf.data pipeline
that augments training batches on the fly."""

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.training.distribute import STRATEGY as STRATEGY_MULTIWORKER
from emotion_analyzer.common.cli import warn
from emotion_analyzer.errors import UserError
from emotion_analyzer.training.recipe import AUGMENTATIONS, ERASE_AREA, ERASE_ASPECT

MIN_SAMPLES_PER_CLASS = 20



def check_arrays(x_train, y_train, x_test, y_test, categories, data_dir):
    """Validate the prepared arrays; return them as (N, 48, 48, 1) arrays and int64 labels."""
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
    missing = [emotion for emotion, count in zip(categories, counts) if not count]
    if missing:
        raise UserError(f"{data_dir}: no training image of {', '.join(missing)}: a model cannot learn an emotion it"
                        " never sees. Add images of it, or drop it with clean_data.py --exclude, then prep_data.py")
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
        n_val = min(max(n_val, 1), len(members) - 1) if len(members) > 1 else 0
        val.extend(rng.choice(members, n_val, replace=False))
    val = np.sort(np.asarray(val, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return rng.permutation(train), val


def augmentation_layers(kind, seed):
    """The recipe's random flip, shift, turn and zoom, or None: a function of a float batch.

    The layers are applied one by one rather than as a keras.Sequential, because a single
    preprocessing layer runs on TensorFlow inside tf.data whatever Keras's backend (a multiworker run
    trains on JAX), and a Sequential of them does not.
    """
    from keras import layers

    settings = AUGMENTATIONS[kind]
    if settings is None:
        return None
    flip, shift, rotation, zoom, _camera = settings
    stack = [layers.RandomFlip("horizontal", seed=seed)] if flip else []
    stack.append(layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed))
    if rotation:
        stack.append(layers.RandomRotation(rotation, fill_mode="reflect", seed=seed))
    if zoom:
        stack.append(layers.RandomZoom(zoom, fill_mode="reflect", seed=seed))

    def augment(images):
        for layer in stack:
            images = layer(images, training=True)
        return images
    return augment


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


def as_the_analyzer_reads(recipe, training):
    """A function from a float batch to the faces the model learns from: uint8 again (the analyzer's
    crops are), degraded like a camera's (the `real` augmentation, training only), then equalized
    when the recipe equalizes, by the analyzer's own function; None when none of it applies."""
    settings = AUGMENTATIONS[recipe.augment]
    camera = training and settings is not None and settings[4]
    if not (camera or recipe.equalize):
        return None
    from emotion_analyzer.training.degrade import degrade
    from emotion_analyzer.core.images import equalize

    rng = np.random.default_rng(recipe.seed)

    def read(batch):
        faces = np.clip(np.rint(batch), 0, 255).astype(np.uint8)
        if camera:
            faces = degrade(faces, rng)
        return (equalize(faces) if recipe.equalize else faces).astype(np.float32)
    return read


def make_dataset(x, y, recipe, num_classes, training):
    """A tf.data pipeline: shuffle, batch, augment, equalize and erase on the fly in parallel
    (augmenting and erasing for training only), and one-hot labels when the recipe smooths them."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        dataset = dataset.shuffle(len(x), seed=recipe.seed, reshuffle_each_iteration=True)
    # A cluster splits each batch evenly among its workers, so a short last batch cannot be used.
    dataset = dataset.batch(recipe.batch_size, drop_remainder=recipe.strategy == STRATEGY_MULTIWORKER)
    dataset = dataset.map(lambda a, b: (tf.cast(a, tf.float32), b), num_parallel_calls=tf.data.AUTOTUNE)
    augment = augmentation_layers(recipe.augment, recipe.seed) if training else None
    if augment is not None:
        dataset = dataset.map(lambda a, b: (augment(a), b), num_parallel_calls=tf.data.AUTOTUNE)
    read = as_the_analyzer_reads(recipe, training)
    if read is not None:
        def read_in_graph(a, b):
            faces = tf.numpy_function(read, [a], tf.float32, stateful=True)
            return tf.ensure_shape(faces, a.shape), b
        dataset = dataset.map(read_in_graph, num_parallel_calls=tf.data.AUTOTUNE)
    if training and recipe.erase:
        dataset = dataset.map(lambda a, b: (erase_rectangles(a, recipe.erase), b),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if recipe.label_smoothing and np.ndim(y) == 1:
        dataset = dataset.map(lambda a, b: (a, tf.one_hot(b, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def balanced_class_weights(labels, num_classes):
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def training_targets(labels, votes, categories, crowd_weight):
    """(N, C) float32 targets: (1 - crowd_weight) x the label's one-hot + crowd_weight x the crowd's
    share of votes; a face without usable votes keeps its one-hot label."""
    one_hot = np.eye(len(categories), dtype=np.float32)[np.asarray(labels)]
    if votes is None or not crowd_weight:
        return one_hot
    from emotion_analyzer.data.prepared import crowd_distribution

    shares, usable = crowd_distribution(votes, categories)
    mixed = (1 - crowd_weight) * one_hot + crowd_weight * shares
    return np.where(usable[:, None], mixed, one_hot).astype(np.float32)


def make_training_batches(x, y, recipe, num_classes):
    """(the training pipeline repeated without end, its batches per pass): one iterator for the whole
    run, as ending a tf.data iterator after every epoch waited up to 40 s for its pipeline threads on
    one epoch in three (docs/experiments.md, 2026-12-04 evening). Each pass is shuffled anew."""
    dataset = make_dataset(x, y, recipe, num_classes, training=True)
    return dataset.repeat(), int(dataset.cardinality())
