import json
import pickle
import re
import shutil

import numpy as np
import pytest

import clean_data
import prep_data
from demo_media import face_like, write_image
from emotion_analyzer.common import fileio
from emotion_analyzer.errors import UserError
from emotion_analyzer.data.prepared import load_prepared

EMOTIONS = ["angry", "fear", "happy", "neutral", "sad", "surprise"]


@pytest.fixture
def cleaned(tmp_path, make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=5)
    out = tmp_path / "data"
    assert clean_data.main(["--source", str(source), "--out", str(out), "--chart", str(tmp_path / "c.png")]) == 0
    return out


def test_pickles_hold_uint8_arrays_and_int_labels(cleaned):
    assert prep_data.main(["--data", str(cleaned)]) == 0
    x, y, x_test, y_test, categories, leak = load_prepared(cleaned)
    assert x.shape == (30, 48, 48, 1) and x.dtype == np.uint8
    assert x_test.shape == (30, 48, 48, 1) and y_test.dtype == np.int64
    assert categories == EMOTIONS
    assert np.bincount(y, minlength=6).tolist() == [5] * 6
    assert leak.dtype == bool and leak.shape == (30,)
    # shuffled: not grouped by class any more, and the same order every run
    assert y.tolist() != sorted(y.tolist())
    first = y.copy()
    assert prep_data.main(["--data", str(cleaned)]) == 0
    np.testing.assert_array_equal(load_prepared(cleaned)[1], first)


def test_colour_and_odd_sized_images_become_48x48_gray(cleaned, capsys):
    write_image(cleaned / "train" / "happy" / "big_colour.png", face_like(2, 99, size=120, channels=3))
    write_image(cleaned / "train" / "sad" / "small.jpg", face_like(4, 98, size=30))
    assert prep_data.main(["--data", str(cleaned)]) == 0
    assert "converted 2 colour or odd-sized" in capsys.readouterr().out
    x, y = load_prepared(cleaned)[:2]
    assert x.shape == (32, 48, 48, 1)


def test_bad_images_are_skipped_with_their_names(cleaned, capsys):
    (cleaned / "train" / "happy" / "zero.jpg").write_bytes(b"")
    good = next((cleaned / "train" / "sad").iterdir()).read_bytes()
    (cleaned / "train" / "sad" / "cut.jpg").write_bytes(good[:len(good) // 3])
    (cleaned / "test" / "fear" / "readme.txt").write_text("not an image")
    assert prep_data.main(["--data", str(cleaned)]) == 0
    captured = capsys.readouterr()
    assert "zero.jpg" in captured.err and "cut.jpg" in captured.err and "readme.txt" in captured.err
    assert "skipped 3 unusable file(s)" in captured.out
    assert load_prepared(cleaned)[0].shape[0] == 30


def test_duplicates_conflicts_blanks_and_leaks_are_reported_and_dropped(cleaned, capsys):
    train, test = cleaned / "train", cleaned / "test"
    happy = next((train / "happy").iterdir())
    shutil.copy(happy, train / "happy" / "copy.jpg")                  # duplicate, same label
    shutil.copy(happy, train / "sad" / "conflict.jpg")                # duplicate, other label
    shutil.copy(happy, test / "happy" / "leak.jpg")                   # test twin of a train image
    write_image(train / "neutral" / "blank.png", np.full((48, 48), 128, np.uint8))
    assert prep_data.main(["--data", str(cleaned)]) == 0
    out = capsys.readouterr().out
    assert "blank images (one flat grey level): 1 train" in out
    assert "1 groups within a split (2 extra copies in train, 0 in test), 1 of them with conflicting labels" in out
    assert "twin in train (leak): 1" in out
    assert load_prepared(cleaned)[5].sum() == 1

    assert prep_data.main(["--data", str(cleaned), "--dedupe"]) == 0
    out = capsys.readouterr().out
    # blank + 3 copies of the conflicting group (original, copy, conflict) in train; the leak in test
    assert "--dedupe dropped 4 train and 1 test images" in out
    x, y, x_test, y_test, _, leak = load_prepared(cleaned)
    assert len(x) == 30 + 3 - 4 and len(x_test) == 30 and not leak.any()


def test_missing_clean_output_says_what_to_run(tmp_path, capsys):
    assert prep_data.main(["--data", str(tmp_path / "nothing")]) == 2
    assert "run clean_data.py" in capsys.readouterr().err


def test_interrupted_prep_leaves_old_pickles_intact(cleaned, monkeypatch):
    assert prep_data.main(["--data", str(cleaned)]) == 0
    before = (cleaned / "labels.pickle").read_bytes()
    real_dumps = pickle.dumps

    def dumps_then_interrupt(obj, *args, **kwargs):
        data = real_dumps(obj, *args, **kwargs)
        if isinstance(obj, np.ndarray) and obj.dtype == np.int64:
            raise KeyboardInterrupt
        return data

    monkeypatch.setattr(fileio.pickle, "dumps", dumps_then_interrupt)
    assert prep_data.main(["--data", str(cleaned), "--seed", "5"]) == 130
    assert (cleaned / "labels.pickle").read_bytes() == before
    assert not [p for p in cleaned.iterdir() if ".tmp" in p.name]


def test_categories_json_is_required_to_be_a_list(cleaned, capsys):
    (cleaned / "categories.json").write_text(json.dumps({"a": 1}))
    assert prep_data.main(["--data", str(cleaned)]) == 2
    assert "expected a list of emotion names" in capsys.readouterr().err


def test_a_set_cut_short_between_its_renames_is_refused_and_a_rerun_mends_it(cleaned, monkeypatch, capsys):
    """What a crash (not a signal, which the commit holds back) between two renames would leave."""
    from emotion_analyzer.data import prepared as prep

    assert prep_data.main(["--data", str(cleaned)]) == 0
    real_commit = prep.commit_temp
    renamed = []

    def crash_after_two(tmp, path):
        if len(renamed) == 2:
            raise KeyboardInterrupt
        renamed.append(path.name)
        real_commit(tmp, path)

    monkeypatch.setattr(prep, "commit_temp", crash_after_two)
    assert prep_data.main(["--data", str(cleaned), "--seed", "5"]) == 130
    assert renamed == ["features.pickle", "labels.pickle"]  # new images and labels beside the old test set
    assert not [p for p in cleaned.iterdir() if ".tmp" in p.name]
    capsys.readouterr()
    with pytest.raises(UserError, match="data/features.pickle does not match prepared.json.*prep_data.py again"):
        load_prepared(cleaned)
    monkeypatch.undo()
    assert prep_data.main(["--data", str(cleaned), "--seed", "5"]) == 0
    x, y = load_prepared(cleaned)[:2]
    assert len(x) == len(y) == 30


def test_the_manifest_names_every_file_with_its_size_and_fingerprint(cleaned):
    assert prep_data.main(["--data", str(cleaned)]) == 0
    manifest = json.loads((cleaned / "prepared.json").read_text())
    assert manifest["categories"] == EMOTIONS
    assert sorted(manifest["files"]) == sorted(["features.pickle", "labels.pickle", "test_features.pickle",
                                                "test_labels.pickle", "test_leaks.pickle"])
    for name, entry in manifest["files"].items():
        assert entry["bytes"] == (cleaned / name).stat().st_size and len(entry["blake2b"]) == 32


def test_progress_bars_end_at_the_count_of_images(tmp_path, capsys, make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=5)
    assert clean_data.main(["--source", str(source), "--out", str(tmp_path / "data"), "--chart",
                            str(tmp_path / "c.png")]) == 0
    assert prep_data.main(["--data", str(tmp_path / "data")]) == 0
    bars = capsys.readouterr().err.replace("\r", "\n")
    for desc, count in (("copying", 60), ("reading train", 30), ("reading test", 30)):
        assert re.search(rf"{desc}: 100%\|.*\| {count}/{count} ", bars), desc
