"""Shared fixtures: small generated datasets, a fresh model, the shared datasets (or a skip with the
reason), and factories for what a test makes in its own folder. Tests take these as arguments; media
and file helpers with no state are plain functions in demo_media.py."""

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from demo_media import face_like, write_image  # noqa: E402  (after the checkout is on the path)
from emotion_analyzer.analysis.capture import Reader  # noqa: E402

# The shared datasets (never committed): ../shared/datasets/ beside the project, or wherever
# EMOTION_ANALYZER_DATASETS points.
DATASETS = Path(os.environ.get("EMOTION_ANALYZER_DATASETS", ROOT.parent / "shared" / "datasets"))
EMOTIONS6 = ["angry", "fear", "happy", "neutral", "sad", "surprise"]


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory):
    """The session's own folder for converted models (never the user's cache), shared by its tests and
    the processes they start."""
    from emotion_analyzer.analysis.engine_cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("engines")
    os.environ[CACHE_ENV] = str(folder)
    return folder


@pytest.fixture(scope="session")
def project_root():
    """The checkout the tests run from: its scripts run as a user runs them."""
    return ROOT


@pytest.fixture(scope="session")
def emotions6():
    """The six emotions of the generated datasets and of fresh_model, in label order."""
    return list(EMOTIONS6)


def shared_archive(name):
    """A shared dataset archive, or a skip naming where it was looked for."""
    path = DATASETS / name
    if not path.is_file():
        pytest.skip(f"the shared dataset {name} is not at {path}")
    return path


@pytest.fixture(scope="session")
def fer2013_archive():
    """The original's dataset (fer2013-6class.tar.gz), or a skip."""
    return shared_archive("fer2013-6class.tar.gz")


@pytest.fixture(scope="session")
def london_archive():
    """The London portraits (london-faces.tar.gz), or a skip."""
    return shared_archive("london-faces.tar.gz")


def folder_dataset_in(root, per_class=6, splits=("Training", "Testing"), emotions=None, ext=".jpg"):
    """Generated per-emotion folders (Kaggle style); returns {split: {emotion: count}}."""
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



@pytest.fixture
def make_folder_dataset():
    """A factory: make_folder_dataset(root, per_class=6, splits=..., emotions=..., ext=...) writes
    per-emotion folders of learnable generated faces (Kaggle style) and returns {split: {emotion: count}}."""
    return folder_dataset_in


@pytest.fixture
def folder_dataset(tmp_path):
    source = tmp_path / "raw data"
    folder_dataset_in(source)
    return source


def prepared_set_in(folder, n_train=240, n_test=60, classes=EMOTIONS6, seed=0, crowd_disagrees=None):
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
def make_prepared_data():
    """A factory: make_prepared_data(folder, n_train=240, n_test=60, classes=..., seed=0,
    crowd_disagrees=None) writes a prepared set of learnable generated faces and returns the folder."""
    return prepared_set_in


@pytest.fixture
def prepared_data(tmp_path):
    return prepared_set_in(tmp_path / "data")


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


@pytest.fixture
def nan_loss_at():
    """A factory: nan_loss_at(epoch, batch) is a callback that makes the loss NaN from that step on."""
    return nan_loss_callback


def nan_loss_callback(epoch, batch):
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


@pytest.fixture
def stopping_camera():
    """A factory: stopping_camera(frames) is a camera Reader that delivers that many frames, then none."""
    return StoppingCamera


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


@pytest.fixture
def london_photos(london_archive):
    """A factory: london_photos(folder, emotion, count) extracts the first `count` photos of one emotion
    from the London archive into `folder` and returns their paths (a skip when the archive is absent)."""
    def extract(folder, emotion, count):
        import tarfile

        with tarfile.open(london_archive) as archive:
            members = sorted((m for m in archive.getmembers() if m.isfile() and f"/{emotion}/" in m.name
                              and m.name.endswith(".jpg")), key=lambda m: m.name)[:count]
            archive.extractall(folder, members=members, filter="data")
        return sorted(Path(folder).rglob(f"{emotion}/*.jpg"))
    return extract
