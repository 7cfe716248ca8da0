"""One place for every fact the scripts share: emotions, image size, file names, default paths."""

from pathlib import Path

# The project's version: emotion_analyzer.__version__, what --version prints and pyproject.toml reads.
VERSION = "1.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent
# In a checkout the scripts sit beside the package and their folders (data/, runs/, res/) are there.
# Installed by pip (pyproject.toml), the package sits alone in site-packages with the shipped model
# inside it, and the folders a run writes are the current folder's.
IN_CHECKOUT = (_CHECKOUT / "analyzer.py").is_file()
PROJECT_ROOT = _CHECKOUT if IN_CHECKOUT else Path()

# The canonical emotion vocabulary. A dataset's classes are numbered in alphabetical order of these
# names (the order of the original's folders: Angry Fear Happy Neutral Sad Surprise).
EMOTIONS = ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# FER2013's numeric codes in fer2013.csv.
FER2013_CODES = {0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}

IMAGE_SIZE = 48
# A face as the model reads it: 48x48, one grey channel (uint8 0-255).
FACE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")
# What a folder run (analyzer.py --csv-dir) takes for videos.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")

TRAIN_SPLIT = "train"
TEST_SPLIT = "test"
SPLITS = (TRAIN_SPLIT, TEST_SPLIT)

DEFAULT_RAW_DIR = PROJECT_ROOT / "raw data"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
RES_DIR = PROJECT_ROOT / "res"
DEFAULT_RUNS_DIR = PROJECT_ROOT / "runs"
# pyproject.toml installs res/'s model and its JSON as the package's res/ folder.
DEFAULT_MODEL_PATH = (RES_DIR if IN_CHECKOUT else PACKAGE_DIR / "res") / "emotion_model.keras"
DEFAULT_SNAPSHOT_DIR = PROJECT_ROOT / "snapshots"

CATEGORIES_FILE = "categories.json"
FEATURES_FILE = "features.pickle"
LABELS_FILE = "labels.pickle"
TEST_FEATURES_FILE = "test_features.pickle"
TEST_LABELS_FILE = "test_labels.pickle"
# Test images with a pixel-identical twin in training, found by prep_data.py (a leak to report).
TEST_LEAKS_FILE = "test_leaks.pickle"
# The categories and each prepared file's size and fingerprint, so a mixed or partial set is refused.
PREPARED_MANIFEST = "prepared.json"

DEFAULT_SEED = 1337
DEFAULT_TEST_SIZE = 0.2


def model_info_path(model_path):
    """The JSON that travels with a trained model (labels, input size, metrics)."""
    return Path(model_path).with_suffix(".json")


def portable_path(path):
    """`path` relative to the project when it lies inside it, so a model's JSON reads the same on any clone."""
    path = Path(path)
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)
