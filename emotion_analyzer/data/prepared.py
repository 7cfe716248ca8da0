"""The prepared set: the contract between data preparation and training. Its files (the original's
four pickles, the leak mask, the crowd's votes), the manifest that ties them together, and the only
way to load them: checked against the manifest, through the restricted loader."""

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.errors import UserError
from emotion_analyzer.data.labels import canonical_emotion
from emotion_analyzer.common.fileio import commit_temp, load_array_pickle, temp_path_beside, write_json_atomic
from emotion_analyzer.common.stops import deferred

# The files of a prepared set, in the order load_prepared returns them.
PREPARED_FILES = (config.FEATURES_FILE, config.LABELS_FILE, config.TEST_FEATURES_FILE, config.TEST_LABELS_FILE,
                  config.TEST_LEAKS_FILE)
# The crowd's votes, [train, test], in a set made from a sorted set with votes (clean_data.py --votes).
VOTES_PICKLE = "votes.pickle"
# FER+'s columns, in its order: eight emotions, then 'the annotator could not tell' and 'not a face'.
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown",
                "NF")
# A face's votes become a target only when at least this share of them fall on the set's emotions;
# faces the crowd mostly called unknown, not a face, or an emotion the set leaves out keep their label.
MIN_SHARE_ON_CATEGORIES = 0.5


def fingerprint(data):
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def write_prepared_set(data_dir, x_train, y_train, x_test, y_test, leak_test, categories, votes=None):
    """The original's four pickles, the leak mask, the crowd's votes when there are any (`votes`:
    [train (N, 10), test (M, 10)], in VOTES_PICKLE) and a manifest, written as one set.

    Every file is written under a temporary name first; then, with stop signals held back, they are
    renamed into place and the manifest (categories, and each file's size and fingerprint) last. A
    crash mid-way leaves files that do not match the manifest, which load_prepared refuses.
    """
    data_dir = Path(data_dir)
    objects = dict(zip(PREPARED_FILES, (x_train, y_train, x_test, y_test, leak_test)))
    if votes is not None:
        objects[VOTES_PICKLE] = [np.asarray(v, np.int16) for v in votes]
    contents = {name: pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL) for name, obj in objects.items()}
    manifest = {"categories": list(categories),
                "files": {name: {"bytes": len(data), "blake2b": fingerprint(data)} for name, data in contents.items()}}
    if votes is not None:
        manifest["vote_columns"] = list(VOTE_COLUMNS)
    staged = {}
    try:
        for name, data in contents.items():
            staged[name] = temp_path_beside(data_dir / name)
            staged[name].write_bytes(data)
        with deferred():
            for name, tmp in staged.items():
                commit_temp(tmp, data_dir / name)
            if votes is None:
                (data_dir / VOTES_PICKLE).unlink(missing_ok=True)
            write_json_atomic(data_dir / config.PREPARED_MANIFEST, manifest)
    finally:
        with deferred():  # a stop mid-way through would leave the rest of the temporary files behind
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)


RERUN_PREP = "Run prep_data.py again (after clean_data.py) to write a complete set."


def read_manifest(data_dir):
    """The prepared set's manifest ({file: size and hash}, categories); a UserError when there is none."""
    data_dir = Path(data_dir)
    rerun = RERUN_PREP
    manifest_path = data_dir / config.PREPARED_MANIFEST
    if not manifest_path.is_file():
        found = [name for name in PREPARED_FILES if (data_dir / name).is_file()]
        what = f"{', '.join(found)} without" if found else "no prepared data and no"
        raise UserError(f"{data_dir}: {what} {config.PREPARED_MANIFEST}, so the set cannot be checked. {rerun}")
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = {name: manifest["files"][name] for name in PREPARED_FILES + (VOTES_PICKLE,)
                    if name in PREPARED_FILES or name in manifest["files"]}
        categories = list(manifest["categories"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{manifest_path}: not a manifest written by prep_data.py ({exc}). {rerun}") from None
    return expected, categories


def load_prepared(data_dir):
    """(x_train, y_train, x_test, y_test, categories, leak_test), checked against the set's manifest and
    loaded through the restricted loader."""
    data_dir = Path(data_dir)
    expected, categories = read_manifest(data_dir)
    arrays = [_load_checked(data_dir / name, expected[name]) for name in PREPARED_FILES]
    x_train, y_train, x_test, y_test, leak = arrays
    return x_train, y_train, x_test, y_test, categories, leak


def _load_checked(path, expected):
    """A file of the prepared set, checked against its manifest entry and loaded by the restricted loader."""
    if not path.is_file():
        raise UserError(f"{path} is missing from the prepared set. {RERUN_PREP}")
    data = path.read_bytes()
    if len(data) != expected["bytes"] or fingerprint(data) != expected["blake2b"]:
        raise UserError(f"{path} does not match {config.PREPARED_MANIFEST} (an interrupted prep_data.py, or"
                        f" files from different runs mixed). {RERUN_PREP}")
    return load_array_pickle(path, data)


def load_prepared_votes(data_dir, n_train, n_test):
    """(train votes (N, 10), test votes (M, 10)) of a prepared set, checked like its other files and
    against the sizes of its splits; None when the set has no votes."""
    data_dir = Path(data_dir)
    expected, _ = read_manifest(data_dir)
    if VOTES_PICKLE not in expected:
        return None
    path = data_dir / VOTES_PICKLE
    votes = _load_checked(path, expected[VOTES_PICKLE])
    shapes = [(n_train, len(VOTE_COLUMNS)), (n_test, len(VOTE_COLUMNS))]
    if not (isinstance(votes, list) and len(votes) == 2
            and [getattr(v, "shape", None) for v in votes] == shapes):
        raise UserError(f"{path}: expected the votes of {n_train:,} training and {n_test:,} test faces. {RERUN_PREP}")
    return votes


def category_columns(categories):
    """For each of a set's categories, the vote column that counts it (None when FER+ has none)."""
    by_emotion = {canonical_emotion(column): i for i, column in enumerate(VOTE_COLUMNS) if canonical_emotion(column)}
    return [by_emotion.get(category) for category in categories]


def crowd_distribution(votes, categories):
    """((N, C) float32 share of each face's votes per category, (N,) bool usable): a face is usable when
    it has votes and at least MIN_SHARE_ON_CATEGORIES of them fall on the categories."""
    votes = np.asarray(votes, dtype=np.float32).reshape(len(votes), len(VOTE_COLUMNS))
    on_categories = np.stack([votes[:, c] if c is not None else np.zeros(len(votes), np.float32)
                              for c in category_columns(categories)], axis=1)
    total, kept = votes.sum(axis=1), on_categories.sum(axis=1)
    usable = (total > 0) & (kept >= MIN_SHARE_ON_CATEGORIES * np.maximum(total, 1))
    shares = np.divide(on_categories, kept[:, None], out=np.zeros_like(on_categories), where=kept[:, None] > 0)
    return shares, usable


def describe_coverage(votes, categories):
    """'24,960 of 25,446 with the crowd's votes (...)': how many faces of a split the crowd's votes cover."""
    votes = np.asarray(votes)
    has_votes = votes.sum(axis=1) > 0
    _, usable = crowd_distribution(votes, categories)
    return (f"{int(usable.sum()):,} of {len(votes):,} faces with usable crowd votes; {int((~has_votes).sum()):,}"
            f" without votes and {int((has_votes & ~usable).sum()):,} the crowd mostly put outside"
            f" {', '.join(categories)} keep their label only")
