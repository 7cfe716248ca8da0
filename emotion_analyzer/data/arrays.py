"""Turn data/train/<emotion>/ and data/test/<emotion>/ into 48x48 uint8 arrays and pickle them.

Also finds what would mislead training or flatter the test score: blank images, pixel-identical
duplicates within a split, duplicates with conflicting labels, and test images with a twin in training.
"""

import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.common.cli import progress
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.images import BadImage, list_image_files, read_face_image
from emotion_analyzer.data.prepared import write_prepared_set


@dataclass
class SplitArrays:
    images: np.ndarray          # (N, 48, 48, 1) uint8
    labels: np.ndarray          # (N,) int64, indexes into categories
    names: list                 # file names, for reports
    skipped: list = field(default_factory=list)  # (file, reason)
    converted: int = 0          # colour or odd-sized files turned into 48x48 grayscale
    votes: np.ndarray | None = None  # (N, 10) the crowd's votes (votes.VOTE_COLUMNS); a row of zeros: none


def read_categories(data_dir):
    """The category list written by clean_data.py, else the emotion folders under train/."""
    data_dir = Path(data_dir)
    path = data_dir / config.CATEGORIES_FILE
    if path.is_file():
        try:
            categories = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc}); rerun clean_data.py") from None
        if not (isinstance(categories, list) and categories and all(isinstance(c, str) for c in categories)):
            raise UserError(f"{path}: expected a list of emotion names; rerun clean_data.py")
        return categories
    train = data_dir / config.TRAIN_SPLIT
    if not train.is_dir():
        raise UserError(f"{train} not found: run clean_data.py first (or pass --data DIR)")
    return sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_split(data_dir, split, categories, workers=4, votes=None):
    """Read every image of one split as 48x48 grayscale, skipping (and recording) unusable files, with
    each face's `votes` ({split/emotion/name: votes}, read_sorted_votes) when given."""
    folder = Path(data_dir) / split
    if not folder.is_dir():
        raise UserError(f"{folder} not found: run clean_data.py first (or pass --data DIR)")
    paths, labels, skipped = [], [], []
    for label, emotion in enumerate(categories):
        images, others = list_image_files(folder / emotion) if (folder / emotion).is_dir() else ([], [])
        paths += images
        labels += [label] * len(images)
        skipped += [(p, "not an image file") for p in others]
    if not paths:
        raise UserError(f"no images under {folder}: expected {folder}/<emotion>/*.jpg (run clean_data.py)")

    def read(path):
        try:
            return read_face_image(path), None
        except BadImage as exc:
            return None, str(exc)

    arrays, kept_labels, names, converted = [], [], [], 0
    with ThreadPoolExecutor(workers) as pool:
        results = progress(pool.map(read, paths), total=len(paths), desc=f"reading {split}", unit="img")
        # the bar leads the zip, so it counts the last image too (zip stops at the first iterable to end)
        for (result, problem), path, label in zip(results, paths, labels):
            if problem:
                skipped.append((path, problem))
                continue
            array, was_converted = result
            converted += was_converted
            arrays.append(array)
            kept_labels.append(label)
            names.append(f"{path.parent.name}/{path.name}")
    if not arrays:
        raise UserError(f"none of the {len(paths):,} files under {folder} is a readable image")
    images = np.stack(arrays)[..., np.newaxis]
    return SplitArrays(images, np.asarray(kept_labels, dtype=np.int64), names, skipped, converted,
                       None if votes is None else _votes_of(votes, split, names))


def read_sorted_votes(data_dir):
    """{split/emotion/name: votes} from the votes file clean_data.py --votes wrote, or None without one."""
    from emotion_analyzer.data.votes import read_votes_by_path, VOTES_FILE

    path = Path(data_dir) / VOTES_FILE
    return read_votes_by_path(path) if path.is_file() else None


def _votes_of(votes, split, names):
    from emotion_analyzer.data.prepared import VOTE_COLUMNS

    none = np.zeros(len(VOTE_COLUMNS), np.int16)
    return np.stack([votes.get(f"{split}/{name}", none) for name in names]).astype(np.int16)


def image_hashes(images):
    return [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images]


@dataclass
class QualityReport:
    blank_train: np.ndarray         # bool masks over each split
    blank_test: np.ndarray
    duplicate_train: np.ndarray     # True for every copy after the first of an identical image
    duplicate_test: np.ndarray
    conflict_train: np.ndarray      # True for images whose identical copies carry different labels
    conflict_test: np.ndarray
    leak_test: np.ndarray           # True for test images with an identical twin in training
    duplicate_groups: int = 0
    conflicting_groups: int = 0


def _split_quality(hashes, labels):
    groups = defaultdict(list)
    for index, digest in enumerate(hashes):
        groups[digest].append(index)
    duplicate = np.zeros(len(hashes), bool)
    conflict = np.zeros(len(hashes), bool)
    n_groups = n_conflicting = 0
    for members in groups.values():
        if len(members) > 1:
            n_groups += 1
            duplicate[members[1:]] = True
            if len({labels[i] for i in members}) > 1:
                n_conflicting += 1
                conflict[members] = True
    return duplicate, conflict, n_groups, n_conflicting


def assess_quality(train, test):
    """Blank images, duplicates, label conflicts and train/test leaks (pixel-identical after resizing)."""
    train_hashes, test_hashes = image_hashes(train.images), image_hashes(test.images)
    dup_train, conf_train, groups_train, conflicting_train = _split_quality(train_hashes, train.labels)
    dup_test, conf_test, groups_test, conflicting_test = _split_quality(test_hashes, test.labels)
    train_set = set(train_hashes)
    return QualityReport(
        blank_train=np.array([img.min() == img.max() for img in train.images], bool),
        blank_test=np.array([img.min() == img.max() for img in test.images], bool),
        duplicate_train=dup_train, duplicate_test=dup_test,
        conflict_train=conf_train, conflict_test=conf_test,
        leak_test=np.array([h in train_set for h in test_hashes], bool),
        duplicate_groups=groups_train + groups_test,
        conflicting_groups=conflicting_train + conflicting_test,
    )


def format_quality(report):
    return [
        f"blank images (one flat grey level): {report.blank_train.sum():,} train, {report.blank_test.sum():,} test",
        f"pixel-identical duplicates: {report.duplicate_groups:,} groups within a split"
        f" ({report.duplicate_train.sum():,} extra copies in train, {report.duplicate_test.sum():,} in test),"
        f" {report.conflicting_groups:,} of them with conflicting labels",
        f"test images with an identical twin in train (leak): {report.leak_test.sum():,}",
    ]


def drop_flagged(split, keep):
    split.images, split.labels = split.images[keep], split.labels[keep]
    if split.votes is not None:
        split.votes = split.votes[keep]
    split.names = [n for n, k in zip(split.names, keep) if k]


def dedupe(train, test, report):
    """Drop blanks, extra copies, conflicting groups and leaked test images; return counts dropped."""
    keep_train = ~(report.blank_train | report.duplicate_train | report.conflict_train)
    keep_test = ~(report.blank_test | report.duplicate_test | report.conflict_test | report.leak_test)
    drop_flagged(train, keep_train)
    drop_flagged(test, keep_test)
    report.leak_test = report.leak_test[keep_test]
    return int((~keep_train).sum()), int((~keep_test).sum())


def shuffle_split(split, rng, *extra):
    order = rng.permutation(len(split.labels))
    split.images, split.labels = split.images[order], split.labels[order]
    if split.votes is not None:
        split.votes = split.votes[order]
    split.names = [split.names[i] for i in order]
    return [e[order] for e in extra]


def prepare(data_dir, seed=config.DEFAULT_SEED, remove_duplicates=False):
    """Read, check, optionally dedupe, shuffle and pickle; return a dict of what was done."""
    categories = read_categories(data_dir)
    votes = read_sorted_votes(data_dir)
    train = load_split(data_dir, config.TRAIN_SPLIT, categories, votes=votes)
    test = load_split(data_dir, config.TEST_SPLIT, categories, votes=votes)
    report = assess_quality(train, test)
    dropped = dedupe(train, test, report) if remove_duplicates else (0, 0)
    rng = np.random.default_rng(seed)
    shuffle_split(train, rng)
    (leak_test,) = shuffle_split(test, rng, report.leak_test)
    votes = [train.votes, test.votes] if train.votes is not None else None
    write_prepared_set(data_dir, train.images, train.labels, test.images, test.labels, leak_test, categories, votes)
    return {"categories": categories, "train": train, "test": test, "report": report, "dropped": dropped}

