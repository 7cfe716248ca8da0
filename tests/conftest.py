"""Shared fixtures: small generated datasets, a fresh model, and skip markers with reasons."""

import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotion_analyzer.analysis.capture import Reader  # noqa: E402  (after the checkout is on the path)

# The shared datasets (never committed): ../shared/datasets/ beside the project, or wherever
# EMOTION_ANALYZER_DATASETS points.
DATASETS = Path(os.environ.get("EMOTION_ANALYZER_DATASETS", ROOT.parent / "shared" / "datasets"))
SHARED_DATASET = DATASETS / "fer2013-6class.tar.gz"
EMOTIONS6 = ["angry", "fear", "happy", "neutral", "sad", "surprise"]

requires_dataset = pytest.mark.skipif(not SHARED_DATASET.is_file(),
                                      reason=f"the real dataset is not at {SHARED_DATASET}")


def face_like(label, seed, size=48, channels=1):
    """A 48x48 image whose pattern depends on the label (so a model can learn it) plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = 128 + 60 * np.sin((xx * (label + 1) + yy * (label % 3)) / 6.0)
    image = np.clip(base + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
    if channels == 3:
        return cv2.merge([image, image // 2, 255 - image])
    return image


def write_image(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def make_folder_dataset(root, per_class=6, splits=("Training", "Testing"), emotions=None, ext=".jpg"):
    """Per-emotion folders (Kaggle style); returns {split: {emotion: count}}."""
    emotions = emotions or ["Angry", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
    counts = {}
    for s, split in enumerate(splits):
        for e, emotion in enumerate(emotions):
            folder = root / split / emotion if split else root / emotion
            for i in range(per_class):
                name = f"{(split or 'img').replace('/', '_')}_{e}_{i}{ext}"
                write_image(folder / name, face_like(e, seed=1000 * s + 100 * e + i))
            counts.setdefault(split, {})[emotion] = per_class
    return counts


def tree_snapshot(root):
    """{relative path: bytes} of every file, to prove a folder was not touched."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture
def folder_dataset(tmp_path):
    source = tmp_path / "raw data"
    make_folder_dataset(source)
    return source


def make_prepared_data(folder, n_train=240, n_test=60, classes=EMOTIONS6, seed=0, crowd_disagrees=None):
    """A prepared set as prep_data.py writes it, with learnable generated images. With
    `crowd_disagrees` (a share), it carries the crowd's votes: all ten on the class each image shows,
    while that share of the labels names the next class instead, as if the dataset's labeller erred."""
    from emotion_analyzer.data.prepared import write_prepared_set

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, votes = [], []
    for n in (n_train, n_test):
        shown = rng.integers(0, len(classes), n).astype(np.int64)
        x = np.stack([face_like(int(label), seed=int(rng.integers(1 << 30))) for label in shown])[..., None]
        y = shown
        if crowd_disagrees is not None:
            erred = rng.random(n) < crowd_disagrees
            y = np.where(erred, (shown + 1) % len(classes), shown)
            votes.append(crowd_votes_for(shown, classes))
        arrays += [x, y]
    leak = np.zeros(n_test, bool)
    leak[:5] = True
    write_prepared_set(folder, *arrays, leak, classes, votes if crowd_disagrees is not None else None)
    return folder


def crowd_votes_for(shown, classes):
    """(N, 10) FER+ votes, all ten on each face's class."""
    from emotion_analyzer.data.prepared import category_columns

    columns = category_columns(classes)
    votes = np.zeros((len(shown), 10), np.int16)
    votes[np.arange(len(shown)), [columns[c] for c in shown]] = 10
    return votes


@pytest.fixture
def prepared_data(tmp_path):
    return make_prepared_data(tmp_path / "data")


@pytest.fixture(scope="session")
def fresh_model(tmp_path_factory):
    """An untrained model of the real architecture, saved with its JSON, as the analyzer loads it."""
    import keras

    from emotion_analyzer.core.model import build_model, input_contract, save_model_atomic, save_model_info

    keras.utils.set_random_seed(1234)  # the same weights every run, so the analyzer's outputs are reproducible
    path = tmp_path_factory.mktemp("model") / "emotion_model.keras"
    model = build_model((48, 48, 1), len(EMOTIONS6))
    save_model_atomic(model, path)
    save_model_info(path, {"labels": EMOTIONS6, "input": input_contract(equalized=True), "tta": "none"})
    return path


@pytest.fixture
def copy_of(tmp_path):
    def copy(path):
        target = tmp_path / Path(path).name
        shutil.copy(path, target)
        return target
    return copy


def nan_loss_at(epoch, batch):
    """A callback that makes the loss NaN from a chosen step on, whatever the machine's kernels do with
    NaN pixels: the output layer's bias becomes NaN, and softmax and cross-entropy carry it."""
    import keras

    class MakeNaN(keras.callbacks.Callback):
        def on_epoch_begin(self, current, logs=None):
            self.epoch = current

        def on_train_batch_begin(self, current, logs=None):
            if (self.epoch, current) == (epoch, batch):
                bias = self.model.get_layer("emotion").bias
                bias.assign(np.full(bias.shape, np.nan, dtype="float32"))

    return MakeNaN()


class StoppingCamera(Reader):
    """A camera that delivers `frames` frames of two drifting heads, then nothing."""

    def __init__(self, frames):
        super().__init__()
        self.frames = frames
        self.fps = 30.0
        self.released = False

    def read(self):
        if self.position >= self.frames:
            return None
        from demo_media import compose_frame

        self.position += 1
        frame, _ = compose_frame(self.position, faces=2)
        return self.position - 1, frame, "camera 0"

    def release(self):
        self.released = True


LONDON_FACES = DATASETS / "london-faces.tar.gz"
requires_london_faces = pytest.mark.skipif(not LONDON_FACES.is_file(),
                                           reason=f"the London faces archive is not at {LONDON_FACES}")


def london_photos(folder, emotion, count):
    """Extract the first `count` photos of one emotion from the London archive into `folder`."""
    import tarfile

    with tarfile.open(LONDON_FACES) as archive:
        members = sorted((m for m in archive.getmembers() if m.isfile() and f"/{emotion}/" in m.name
                          and m.name.endswith(".jpg")), key=lambda m: m.name)[:count]
        archive.extractall(folder, members=members, filter="data")
    return sorted(Path(folder).rglob(f"{emotion}/*.jpg"))
