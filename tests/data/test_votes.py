"""The FER+ crowd's votes: read with the dataset, carried through the sorted and prepared sets, turned
into targets and used to judge a model."""

import hashlib
import json

import cv2
import numpy as np
import pytest

import clean_data
import prep_data
from emotion_analyzer.training.evaluate import crowd_metrics
from emotion_analyzer.data.prepared import load_prepared, load_prepared_votes
from emotion_analyzer.data.prepared import crowd_distribution, VOTE_COLUMNS
from emotion_analyzer.data.votes import VOTES_FILE
from emotion_analyzer.training.inputs import training_targets

EMOTIONS = ["angry", "fear", "happy", "neutral", "sad", "surprise"]
HEADER = "image," + ",".join(VOTE_COLUMNS)


def votes_for(index):
    """Ten votes that differ from image to image: (neutral, happiness, ..., NF)."""
    votes = [0] * len(VOTE_COLUMNS)
    votes[index % 6] += 6
    votes[(index + 1) % 8] += 4
    return votes


def write_votes(source, path, skip_every=5, extra_rows=()):
    """A path-keyed votes file for the images under `source`, leaving every `skip_every`th one out."""
    images = sorted(p.relative_to(source).as_posix() for p in source.rglob("*.jpg"))
    rows = [HEADER] + [",".join([name, *map(str, votes_for(i))]) for i, name in enumerate(images) if i % skip_every]
    path.write_text("\n".join(rows + list(extra_rows)) + "\n")
    return {name: votes_for(i) for i, name in enumerate(images) if i % skip_every}


def pixel_key(image):
    return hashlib.blake2b(np.ascontiguousarray(image).reshape(48, 48).tobytes(), digest_size=16).hexdigest()


def clean(source, out, *extra):
    return clean_data.main(["--source", str(source), "--out", str(out), "--chart", str(out.parent / "c.png"), *extra])


@pytest.fixture
def voted_source(tmp_path, make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=5)
    return source, write_votes(source, tmp_path / "votes.csv")


def test_each_face_keeps_its_own_votes_through_clean_and_prep(voted_source, tmp_path, capsys):
    source, votes = voted_source
    out = tmp_path / "data"
    assert clean(source, out, "--votes", str(tmp_path / "votes.csv")) == 0
    assert f"{len(votes)} image(s) have them, {60 - len(votes)} do not" in capsys.readouterr().out
    assert (out / VOTES_FILE).is_file()
    assert prep_data.main(["--data", str(out)]) == 0
    printed = capsys.readouterr().out
    # Of each split's 30 faces, 6 have no row and 4 have most of their votes on disgust (votes_for).
    assert ("train: 20 of 30 faces with usable crowd votes; 6 without votes and 4 the crowd mostly put outside"
            in printed)

    # Each prepared face, found again by its pixels among the source images, carries that image's votes.
    by_pixels = {pixel_key(cv2.imread(str(source / name), cv2.IMREAD_GRAYSCALE)): row for name, row in votes.items()}
    x, y, x_test, y_test, _, _ = load_prepared(out)
    train_votes, test_votes = load_prepared_votes(out, len(y), len(y_test))
    for images, split_votes in ((x, train_votes), (x_test, test_votes)):
        for image, row in zip(images, split_votes):
            expected = by_pixels.get(pixel_key(image), [0] * len(VOTE_COLUMNS))
            assert row.tolist() == expected
    manifest = json.loads((out / "prepared.json").read_text())
    assert "votes.pickle" in manifest["files"] and manifest["vote_columns"] == list(VOTE_COLUMNS)


def test_a_rerun_without_votes_leaves_no_stale_votes(voted_source, tmp_path):
    source, _ = voted_source
    out = tmp_path / "data"
    assert clean(source, out, "--votes", str(tmp_path / "votes.csv")) == 0
    assert prep_data.main(["--data", str(out)]) == 0
    assert clean(source, out, "--force") == 0
    assert not (out / VOTES_FILE).exists()
    assert prep_data.main(["--data", str(out)]) == 0
    assert not (out / "votes.pickle").exists()
    assert load_prepared_votes(out, 30, 30) is None


def test_a_votes_pickle_from_another_set_is_refused(voted_source, tmp_path, capsys):
    from emotion_analyzer.errors import UserError
    from emotion_analyzer.data.prepared import write_prepared_set

    source, _ = voted_source
    out = tmp_path / "data"
    assert clean(source, out, "--votes", str(tmp_path / "votes.csv")) == 0
    assert prep_data.main(["--data", str(out)]) == 0
    stale = (out / "votes.pickle").read_bytes()
    x, y, xt, yt, categories, leak = load_prepared(out)
    write_prepared_set(out, x, y, xt, yt, leak, categories, [np.zeros((30, 10)), np.ones((30, 10))])
    (out / "votes.pickle").write_bytes(stale)
    with pytest.raises(UserError, match="votes.pickle does not match prepared.json"):
        load_prepared_votes(out, 30, 30)


@pytest.mark.parametrize("problem, rows, message", [
    ("a name not in the dataset", ["Training/Angry/nobody.jpg" + ",1" * 10],
     "1 of its 49 images are not under"),
    ("counts that are not votes", ["Training/Angry/Training_0_0.jpg" + ",x" * 10], "whole numbers of at least 0"),
    ("negative counts", ["Training/Angry/Training_0_0.jpg" + ",-1" * 10], "whole numbers of at least 0"),
])
def test_a_votes_file_that_does_not_fit_is_refused_in_one_line(tmp_path, capsys, problem, rows, message,
                                                               make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=5)
    write_votes(source, tmp_path / "votes.csv", extra_rows=rows)
    assert clean(source, tmp_path / "data", "--votes", str(tmp_path / "votes.csv")) == 2
    err = capsys.readouterr().err
    assert message in err and "votes.csv" in err and err.count("\n") == 1
    assert not (tmp_path / "data" / "train").exists()


def test_a_votes_file_without_vote_columns_is_refused(tmp_path, capsys, make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=5)
    (tmp_path / "votes.csv").write_text("image,emotion\nTraining/Angry/Training_0_0.jpg,angry\n")
    assert clean(source, tmp_path / "data", "--votes", str(tmp_path / "votes.csv")) == 2
    assert "missing column(s) neutral, happiness" in capsys.readouterr().err


def write_fer2013_pair(folder, rows=14):
    """fer2013.csv and FER+'s fer2013new.csv for it: row r's crowd votes all go to FER+ column r % 8."""
    rng = np.random.default_rng(0)
    old, new = ["emotion,pixels,Usage"], ["Usage,Image name," + ",".join(VOTE_COLUMNS)]
    for r in range(rows):
        usage = ("Training", "PublicTest")[r % 2]
        old.append(f"{(0, 2, 3, 4, 5, 6)[r % 6]},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},{usage}")
        votes = [0] * len(VOTE_COLUMNS)
        votes[r % 8] = 10
        name = "" if r == 3 else f"fer{r:07d}.png"  # FER+ leaves some faces unlabelled
        new.append(f"{usage},{name},{','.join(map(str, votes))}")
    (folder / "fer2013.csv").write_text("\n".join(old) + "\n")
    (folder / "fer2013new.csv").write_text("\n".join(new) + "\n")


def test_fer2013_csv_takes_ferplus_own_file_row_by_row(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_fer2013_pair(raw)
    out = tmp_path / "data"
    assert clean(raw / "fer2013.csv", out, "--votes", str(raw / "fer2013new.csv")) == 0
    assert "13 image(s) have them, 1 do not" in capsys.readouterr().out
    rows = (out / VOTES_FILE).read_text().splitlines()[1:]
    for line in rows:
        name, *votes = line.split(",")
        row = int(name.rsplit("/", 1)[1].split(".")[0])  # fer2013.csv's row, as clean_data.py names it
        assert votes.index("10") == row % 8


def test_fer2013new_with_another_row_count_is_refused(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_fer2013_pair(raw)
    lines = (raw / "fer2013new.csv").read_text().splitlines()
    (raw / "fer2013new.csv").write_text("\n".join(lines[:-2]) + "\n")
    assert clean(raw / "fer2013.csv", tmp_path / "data", "--votes", str(raw / "fer2013new.csv")) == 2
    assert "12 rows of votes, but fer2013.csv has 14" in capsys.readouterr().err


def votes_row(**counts):
    return [counts.get(column, 0) for column in VOTE_COLUMNS]


def test_targets_mix_the_label_with_the_crowd_and_keep_the_label_where_the_crowd_cannot_say():
    votes = np.array([
        votes_row(neutral=6, sadness=4),           # a FER2013 'sad' face the crowd mostly calls neutral
        votes_row(unknown=6, anger=4),             # mostly unknown: the label stands
        votes_row(NF=10),                          # not a face: the label stands
        votes_row(contempt=5, disgust=1, anger=4),  # mostly emotions this set does not have: the label stands
        votes_row(),                               # no votes: the label stands
    ])
    labels = np.array([4, 0, 2, 0, 5])  # sad, angry, happy, angry, surprise
    half = training_targets(labels, votes, EMOTIONS, 0.5)
    np.testing.assert_allclose(half[0], [0, 0, 0, 0.3, 0.7, 0])
    np.testing.assert_allclose(half[1:], np.eye(6)[labels[1:]])
    np.testing.assert_allclose(training_targets(labels, votes, EMOTIONS, 1.0)[0], [0, 0, 0, 0.6, 0.4, 0])
    np.testing.assert_allclose(training_targets(labels, votes, EMOTIONS, 0.0), np.eye(6)[labels])
    assert crowd_distribution(votes, EMOTIONS)[1].tolist() == [True, False, False, False, False]


def test_a_seven_emotion_set_counts_disgust_votes():
    shares, usable = crowd_distribution(np.array([votes_row(disgust=6, anger=4)]), EMOTIONS[:2] + ["disgust"])
    assert usable.tolist() == [True]
    np.testing.assert_allclose(shares, [[0.4, 0, 0.6]])


def test_the_crowd_judges_answers_by_its_majority_and_its_share_on_each_answer():
    votes = np.array([votes_row(neutral=7, sadness=3), votes_row(happiness=10), votes_row(sadness=6, neutral=4),
                      votes_row(unknown=9, neutral=1)])
    answers = np.array([4, 2, 4, 3])  # sad, happy, sad, neutral
    judged = crowd_metrics(answers, votes, EMOTIONS)
    assert judged["test_images"] == 3 and judged["faces_without_usable_votes"] == 1
    assert judged["faces_with_tied_votes"] == 0
    assert judged["accuracy"] == pytest.approx(2 / 3)
    assert judged["mean_share_on_answer"] == pytest.approx((0.3 + 1.0 + 0.6) / 3)
    assert judged["per_class"]["neutral"]["recall"] == 0 and judged["per_class"]["sad"]["recall"] == 1


def test_a_face_whose_votes_tie_agrees_with_an_answer_naming_any_of_the_tied_emotions():
    votes = np.array([votes_row(neutral=4, sadness=4, anger=2), votes_row(neutral=4, sadness=4, anger=2),
                      votes_row(neutral=4, sadness=4, anger=2), votes_row(fear=5, surprise=5)])
    answers = np.array([3, 4, 0, 5])  # neutral, sad (both tied on top), angry (not), surprise (tied with fear)
    judged = crowd_metrics(answers, votes, EMOTIONS)
    assert judged["accuracy"] == pytest.approx(3 / 4) and judged["faces_with_tied_votes"] == 4
    matrix = np.array(judged["confusion_matrix"])
    # the face answered angry counts against the first of its tied emotions, neutral
    assert matrix[3, 3] == 1 and matrix[4, 4] == 1 and matrix[3, 0] == 1 and matrix[5, 5] == 1
    assert matrix.sum() == 4
