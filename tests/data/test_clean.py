import json
import os
import signal

import cv2
import numpy as np
import pytest

import clean_data
from demo_media import face_like, tree_snapshot, write_image
from emotion_analyzer.data import sorted_folders as sorted_output

EMOTIONS = ["angry", "fear", "happy", "neutral", "sad", "surprise"]


def run_clean(source, out, *extra):
    chart = out.parent / "chart.png"
    return clean_data.main(["--source", str(source), "--out", str(out), "--chart", str(chart), *extra])


def counts_under(out, split):
    return {p.name: len(list(p.iterdir())) for p in sorted((out / split).iterdir())}


KAGGLE = ["Angry", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
SYNONYM_NAMES = ["Anger", "Fear", "Happiness", "Neutral", "Sadness", "Surprised"]


@pytest.mark.parametrize("train_dir, test_dir, emotions", [
    ("Training", "Testing", KAGGLE),
    ("train", "test", [e.lower() for e in KAGGLE]),
    ("Training/Training", "Testing/Testing", [e.upper() for e in KAGGLE]),
    ("images/train", "images/validation", SYNONYM_NAMES),
])
def test_per_emotion_folders_keep_their_split(tmp_path, train_dir, test_dir, emotions, make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=3, splits=(train_dir, test_dir), emotions=emotions)
    out = tmp_path / "data"
    assert run_clean(source, out) == 0
    assert counts_under(out, "train") == dict.fromkeys(EMOTIONS, 3)
    assert counts_under(out, "test") == dict.fromkeys(EMOTIONS, 3)
    assert json.loads((out / "categories.json").read_text()) == EMOTIONS
    assert (tmp_path / "chart.png").stat().st_size > 1000


def test_folders_without_split_get_a_stratified_split(tmp_path, make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=10, splits=(None,))
    out = tmp_path / "data"
    assert run_clean(source, out, "--test-size", "0.3") == 0
    assert counts_under(out, "test") == dict.fromkeys(EMOTIONS, 3)
    assert counts_under(out, "train") == dict.fromkeys(EMOTIONS, 7)


def test_split_is_reproducible_with_seed(tmp_path, make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=10, splits=(None,))
    listings = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert run_clean(source, out, "--seed", "7") == 0
        listings.append(sorted(p.name for p in (out / "test").rglob("*.jpg")))
    assert listings[0] == listings[1]


def write_legend(source, rows, header="user.id,image,emotion"):
    lines = ["# exported from the original project", header] + [",".join(r) for r in rows]
    (source / "data").mkdir(parents=True, exist_ok=True)
    (source / "data" / "legend.csv").write_text("\n".join(lines) + "\n")


def test_index_csv_with_quirks(tmp_path, capsys):
    source = tmp_path / "raw"
    rows = []
    labels = ["HAPPINESS", "happiness", "anger", "Sadness", "neutral", "SURPRISE", "fear", "contempt"]
    for i in range(40):
        name = f"face_{i}.png"
        write_image(source / "images" / name, face_like(i % 8, seed=i, size=64, channels=3))
        rows.append(("u1", name, labels[i % 8]))
    rows.append(("u1", "face_0.png", "HAPPINESS"))        # duplicate row
    rows.append(("u2", "missing.png", "happiness"))       # image does not exist
    rows.append(("u2", "face_1.png", "sadness"))          # conflicts with face_1 = happiness
    write_legend(source, rows)
    out = tmp_path / "data"
    assert run_clean(source, out, "--exclude", "contempt") == 0
    err = capsys.readouterr().err
    assert "missing.png" in err and "not found" in err
    assert "conflicting" in err and "face_1.png" in err
    assert "listed twice" in err
    total = sum(counts_under(out, "train").values()) + sum(counts_under(out, "test").values())
    assert total == 40 - 5 - 1  # 5 contempt excluded, face_1 dropped for its conflicting labels
    assert "contempt" not in json.loads((out / "categories.json").read_text())


def test_unknown_label_lists_what_was_seen_and_how_to_fix(tmp_path, capsys):
    source = tmp_path / "raw"
    write_image(source / "images" / "a.png", face_like(0, 0))
    write_image(source / "images" / "b.png", face_like(1, 1))
    write_legend(source, [("u", "a.png", "happy"), ("u", "b.png", "stressed")])
    assert run_clean(source, tmp_path / "data") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "'stressed'" in err and "--map stressed=EMOTION" in err and "--exclude stressed" in err
    assert run_clean(source, tmp_path / "data2", "--map", "stressed=fear", "--test-size", "0.5") == 0


def write_fer2013_csv(path, rows_per_code=4):
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for code in range(7):
        for i in range(rows_per_code):
            pixels = " ".join(str(v) for v in rng.integers(0, 256, 48 * 48))
            usage = ("Training", "PublicTest", "PrivateTest", "Training")[i % 4]
            lines.append(f"{code},{pixels},{usage}")
    lines.append("3,1 2 3,Training")  # a row with too few pixels
    path.write_text("\n".join(lines) + "\n")


def test_fer2013_csv(tmp_path, capsys):
    csv = tmp_path / "raw" / "fer2013.csv"
    csv.parent.mkdir()
    write_fer2013_csv(csv)
    out = tmp_path / "data"
    assert run_clean(csv.parent, out, "--exclude", "disgust") == 0
    assert counts_under(out, "train") == dict.fromkeys(EMOTIONS, 2)
    assert counts_under(out, "test") == dict.fromkeys(EMOTIONS, 2)
    image = cv2.imread(str(next((out / "train" / "happy").iterdir())), cv2.IMREAD_UNCHANGED)
    assert image.shape == (48, 48) and image.dtype == np.uint8
    assert "expected 2304 pixel values" in capsys.readouterr().err


def test_source_is_never_changed(folder_dataset, tmp_path):
    before = tree_snapshot(folder_dataset)
    assert run_clean(folder_dataset, tmp_path / "data") == 0
    assert tree_snapshot(folder_dataset) == before


def test_refuses_non_empty_output_without_force(folder_dataset, tmp_path, capsys):
    out = tmp_path / "data"
    assert run_clean(folder_dataset, out) == 0
    assert run_clean(folder_dataset, out) == 2
    assert "--force" in capsys.readouterr().err
    assert run_clean(folder_dataset, out, "--force") == 0
    assert counts_under(out, "train") == dict.fromkeys(EMOTIONS, 6)


def test_force_never_deletes_folders_it_did_not_make(folder_dataset, tmp_path, capsys):
    out = tmp_path / "data"
    write_image(out / "train" / "mine.png", face_like(0, 0))
    assert run_clean(folder_dataset, out, "--force") == 2
    assert "not made by clean_data.py" in capsys.readouterr().err
    assert (out / "train" / "mine.png").exists()


@pytest.mark.parametrize("problem", ["zero-byte", "truncated", "not-an-image", "text-file"])
def test_bad_files_are_skipped_by_name_with_counts(folder_dataset, tmp_path, capsys, problem):
    bad = folder_dataset / "Training" / "Happy"
    if problem == "zero-byte":
        (bad / "empty.jpg").write_bytes(b"")
        expected = "empty.jpg"
    elif problem == "truncated":
        data = (bad / next(p.name for p in bad.iterdir())).read_bytes()
        (bad / "cut.jpg").write_bytes(data[: len(data) // 2])
        expected = "cut.jpg"
    elif problem == "not-an-image":
        (bad / "fake.jpg").write_bytes(b"this is not a jpeg at all" * 10 + b"\xff\xd9")
        expected = "fake.jpg"
    else:
        (bad / "notes.txt").write_text("hello")
        expected = "notes.txt"
    out = tmp_path / "data"
    assert run_clean(folder_dataset, out) == 0
    captured = capsys.readouterr()
    assert expected in captured.err and "skipped 1 (" in captured.err
    assert "skipped 1 file(s)" in captured.out
    assert counts_under(out, "train")["happy"] == 6


@pytest.mark.parametrize("make_source, message", [
    (lambda p: p / "nowhere", "does not exist"),
    (lambda p: p.joinpath("empty").mkdir() or p / "empty", "no images found"),
    (lambda p: (p / "x.csv").write_text("a,b\n1,2\n") and p / "x.csv", "needs 'image' and 'emotion'"),
])
def test_unusable_sources_give_one_line(tmp_path, capsys, make_source, message):
    source = make_source(tmp_path)
    assert run_clean(source, tmp_path / "data") == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_index_naming_only_missing_images(tmp_path, capsys):
    source = tmp_path / "raw"
    write_legend(source, [("u", "gone.png", "happy"), ("u", "lost.png", "sad")])
    assert run_clean(source, tmp_path / "data") == 2
    assert "names an image found" in capsys.readouterr().err


def test_ctrl_c_leaves_no_partial_output(folder_dataset, tmp_path, monkeypatch):
    calls = []
    real_write = sorted_output._write_item

    def interrupted(item, folder):
        calls.append(item)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return real_write(item, folder)

    monkeypatch.setattr(sorted_output, "_write_item", interrupted)
    out = tmp_path / "data"
    assert run_clean(folder_dataset, out) == 130
    assert not any(out.iterdir()) if out.exists() else True
    monkeypatch.setattr(sorted_output, "_write_item", real_write)
    assert run_clean(folder_dataset, out) == 0


def test_fer2013_code_outside_the_standard_seven_needs_a_map(tmp_path, capsys):
    csv = tmp_path / "raw" / "fer2013.csv"
    csv.parent.mkdir()
    write_fer2013_csv(csv)
    pixels = " ".join(["128"] * 48 * 48)
    with open(csv, "a") as handle:
        handle.write(f"7,{pixels},Training\n7,{pixels},PublicTest\n")
    assert run_clean(csv.parent, tmp_path / "a") == 2
    assert "'7'" in capsys.readouterr().err
    assert run_clean(csv.parent, tmp_path / "b", "--map", "7=contempt") == 0
    assert counts_under(tmp_path / "b", "train")["contempt"] == 1


def test_excluding_a_dataset_label_as_the_unknown_label_error_suggests(tmp_path, capsys):
    source = tmp_path / "raw"
    for i, label in enumerate(["happy", "sad", "stressed"] * 4):
        write_image(source / "images" / f"{i}.png", face_like(i % 3, i))
    write_legend(source, [("u", f"{i}.png", label) for i, label in enumerate(["happy", "sad", "stressed"] * 4)])
    out = tmp_path / "data"
    assert run_clean(source, out, "--exclude", "stressed", "--test-size", "0.5") == 0
    assert json.loads((out / "categories.json").read_text()) == ["happy", "sad"]
    assert sum(counts_under(out, "train").values()) + sum(counts_under(out, "test").values()) == 8


@pytest.mark.parametrize("splits, validation_goes_to, message", [
    (("train", "val", "test"), "train", "added the source's 12 validation image(s) to train"),
    (("train", "validation"), "test", "its 12 validation image(s) are the test split"),
])
def test_a_validation_folder_is_never_merged_silently(tmp_path, capsys, splits, validation_goes_to, message,
                                                      make_folder_dataset):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=2, splits=splits)
    out = tmp_path / "data"
    assert run_clean(source, out) == 0
    assert message in capsys.readouterr().out
    per_split = 2 * 6
    assert sum(counts_under(out, "test").values()) == per_split
    assert sum(counts_under(out, "train").values()) == per_split * (2 if validation_goes_to == "train" else 1)


def test_the_chart_of_another_output_goes_beside_it(folder_dataset, tmp_path):
    from emotion_analyzer import config

    shipped = config.RES_DIR / "class_distribution.png"
    before = shipped.read_bytes()
    out = tmp_path / "elsewhere"
    assert clean_data.main(["--source", str(folder_dataset), "--out", str(out)]) == 0
    assert (out / "class_distribution.png").stat().st_size > 0
    assert shipped.read_bytes() == before


def test_an_index_name_found_twice_is_an_error_unless_given_by_its_path(tmp_path, capsys):
    source = tmp_path / "raw"
    for folder in ("a", "b"):
        write_image(source / "images" / folder / "dup.jpg", face_like(0 if folder == "a" else 1, 1))
    for i in range(6):
        write_image(source / "images" / f"other{i}.jpg", face_like(i % 2, i))
    rows = [("u", f"other{i}.jpg", "happy" if i % 2 else "sad") for i in range(6)]
    write_legend(source, rows + [("u", "dup.jpg", "sad")])
    assert run_clean(source, tmp_path / "data") == 2
    err = capsys.readouterr().err
    assert "'dup.jpg' matches 2 files" in err and "images/a/dup.jpg" in err and "images/b/dup.jpg" in err

    write_legend(source, rows + [("u", "images/b/dup.jpg", "sad")])
    assert run_clean(source, tmp_path / "data2", "--test-size", "0.25") == 0
    written = list((tmp_path / "data2").rglob("dup.jpg"))
    assert len(written) == 1 and written[0].parent.name == "sad"
    assert written[0].read_bytes() == (source / "images" / "b" / "dup.jpg").read_bytes()


def test_a_semicolon_separated_index_is_read(tmp_path):
    source = tmp_path / "raw"
    labels = ["happy", "sad"] * 4
    for i, label in enumerate(labels):
        write_image(source / "images" / f"{i}.jpg", face_like(i % 2, i))
    write_legend(source, [(f"u;{i}.jpg;{label}",) for i, label in enumerate(labels)], header="user.id;image;emotion")
    out = tmp_path / "data"
    assert run_clean(source, out, "--test-size", "0.25") == 0
    assert json.loads((out / "categories.json").read_text()) == ["happy", "sad"]


@pytest.mark.parametrize("flag", ["--chart", "--out"])
def test_an_impossible_output_path_fails_before_any_work(folder_dataset, tmp_path, capsys, flag):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    paths = {"--chart": str(tmp_path / "data2" / "chart.png"), "--out": str(tmp_path / "data")}
    paths[flag] = str(blocker / "below" / ("chart.png" if flag == "--chart" else "data"))
    args = ["--source", str(folder_dataset), "--out", paths["--out"], "--chart", paths["--chart"]]
    assert clean_data.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} ") and "is a file, not a folder" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()  # nothing was written


@pytest.mark.parametrize("value", ["0", "1", "-0.2", "1.5"])
def test_a_test_size_that_is_not_a_fraction_is_refused_at_parse_time(folder_dataset, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as stop:
        run_clean(folder_dataset, tmp_path / "data", "--test-size", value)
    assert stop.value.code == 2
    assert f"argument --test-size: {value}: expected a fraction" in capsys.readouterr().err


def test_a_chart_inside_the_raw_data_is_refused(folder_dataset, tmp_path, capsys):
    before = tree_snapshot(folder_dataset)
    chart = folder_dataset / "Training" / "Angry" / "chart.png"
    assert clean_data.main(["--source", str(folder_dataset), "--out", str(tmp_path / "data"),
                            "--chart", str(chart)]) == 2
    assert "inside --source" in capsys.readouterr().err
    assert tree_snapshot(folder_dataset) == before


def test_a_stop_while_the_old_set_is_removed_leaves_no_part_of_it(folder_dataset, tmp_path, monkeypatch):
    out = tmp_path / "data"
    assert run_clean(folder_dataset, out) == 0
    new = tree_snapshot(out)
    real_rmtree = sorted_output.shutil.rmtree

    def stopped_at_once(path):
        os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler at the next bytecode
        real_rmtree(path)

    monkeypatch.setattr(sorted_output.shutil, "rmtree", stopped_at_once)
    assert run_clean(folder_dataset, out, "--force") == 130
    assert tree_snapshot(out) == new  # the same set again, and no hidden folder of the old one


def test_the_hidden_copy_of_a_killed_run_is_removed_by_the_next_and_a_running_ones_kept(folder_dataset, tmp_path,
                                                                                        capsys):
    out = tmp_path / "data"
    assert run_clean(folder_dataset, out) == 0
    new = tree_snapshot(out)
    killed = out / f"{sorted_output.PARTIAL_PREFIX}{2**22 + 1}"  # above any Linux process id: no such process
    running = out / f"{sorted_output.PARTIAL_PREFIX}{os.getppid()}"  # as if another clean_data.py were at work
    for folder in (killed, running):
        write_image(folder / "train" / "angry" / "a.jpg", face_like(0, seed=1))
    assert run_clean(folder_dataset, out, "--force") == 0
    assert f"removed {killed}" in capsys.readouterr().err
    assert not killed.exists() and running.exists()
    kept = {f"{running.name}/{name}": data for name, data in tree_snapshot(running).items()}
    assert tree_snapshot(out) == {**new, **kept}  # the new set, beside the other run's work untouched
