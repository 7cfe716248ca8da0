"""The real FER2013 6-class dataset from ../shared/datasets/, end to end through clean and prep."""

import tarfile

import numpy as np

import clean_data
import prep_data
from conftest import SHARED_DATASET, requires_dataset
from emotion_analyzer.prep import load_prepared

TRAIN = {"angry": 3995, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830, "surprise": 3171}
TEST = {"angry": 958, "fear": 1024, "happy": 1774, "neutral": 1233, "sad": 1247, "surprise": 831}


@requires_dataset
def test_real_dataset_clean_and_prep_give_the_published_counts(tmp_path, capsys):
    with tarfile.open(SHARED_DATASET) as archive:
        archive.extractall(tmp_path / "raw", filter="data")
    source = tmp_path / "raw" / "fer2013-6class"
    out = tmp_path / "data"
    assert clean_data.main(["--source", str(source), "--out", str(out), "--chart", str(tmp_path / "c.png")]) == 0
    assert prep_data.main(["--data", str(out)]) == 0
    report = capsys.readouterr().out
    x, y, x_test, y_test, categories, leak = load_prepared(out)
    assert categories == list(TRAIN)
    assert x.shape == (28273, 48, 48, 1) and x.dtype == np.uint8
    assert x_test.shape == (7067, 48, 48, 1) and x_test.dtype == np.uint8
    assert dict(zip(categories, np.bincount(y).tolist())) == TRAIN
    assert dict(zip(categories, np.bincount(y_test).tolist())) == TEST
    assert int(leak.sum()) == 537
    assert "twin in train (leak): 537" in report
    assert "blank images (one flat grey level): 11 train, 1 test" in report
