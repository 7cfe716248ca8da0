"""Interrupt anything, lose nothing: each script is stopped by a signal at several moments, and what is
on disk afterwards must be the complete old state or the complete new one; a rerun (or --resume) then
finishes the job. When the signal lands differs from machine to machine; what is checked does not."""

import json
import os
import signal
import subprocess
import sys

import pytest

from demo_media import tree_snapshot

pytestmark = pytest.mark.slow
DELAYS = (0.5, 1.5, 3.0)


def start(project_root, script, *args):
    return subprocess.Popen([sys.executable, str(project_root / script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"})


def stop_after(process, delay, signum):
    """Send `signum` after `delay` seconds (unless it ended before); return its exit code."""
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signum)
    process.communicate(timeout=300)
    return process.returncode


def run_to_end(project_root, script, *args):
    process = start(project_root, script, *args)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-2000:]
    return out.decode()


def stopped_by(code, signum):
    """Finished before the signal, stopped by it cleanly, or stopped by it while Python was still starting."""
    return code in (0, 128 + signum, -signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_clean_data_leaves_the_old_folders_or_the_new(tmp_path, signum, make_folder_dataset, project_root):
    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=60, splits=(None,))  # no split: --seed decides the test split
    out, chart = tmp_path / "data", tmp_path / "chart.png"
    args = ["--source", source, "--out", out, "--chart", chart, "--force"]
    run_to_end(project_root, "clean_data.py", *args, "--seed", "1")
    old = tree_snapshot(out)
    reference = tmp_path / "reference"
    run_to_end(project_root, "clean_data.py", "--source", source, "--out", reference, "--chart", chart, "--seed", "2")
    new = tree_snapshot(reference)
    for delay in DELAYS:
        code = stop_after(start(project_root, "clean_data.py", *args, "--seed", "2"), delay, signum)
        assert stopped_by(code, signum), code
        now = tree_snapshot(out)
        assert [name for name in now if "partial" in name] == []
        assert now in (old, new), f"a blend at {delay} s"
    run_to_end(project_root, "clean_data.py", *args, "--seed", "2")
    assert tree_snapshot(out) == new


def test_prep_data_leaves_the_old_set_or_the_new(tmp_path, make_folder_dataset, project_root):
    from emotion_analyzer.data.prepared import load_prepared

    source = tmp_path / "raw"
    make_folder_dataset(source, per_class=150)
    data = tmp_path / "data"
    run_to_end(project_root, "clean_data.py", "--source", source, "--out", data, "--chart", tmp_path / "chart.png")
    names = ("features.pickle", "labels.pickle", "test_features.pickle", "test_labels.pickle", "test_leaks.pickle",
             "prepared.json")

    def prepared():
        return {name: (data / name).read_bytes() for name in names if (data / name).exists()}

    run_to_end(project_root, "prep_data.py", "--data", data, "--seed", "2")
    new = prepared()
    run_to_end(project_root, "prep_data.py", "--data", data, "--seed", "1")
    old = prepared()
    assert old != new
    for delay in DELAYS:
        code = stop_after(start(project_root, "prep_data.py", "--data", data, "--seed", "2"), delay, signal.SIGINT)
        assert stopped_by(code, signal.SIGINT), code
        assert prepared() in (old, new), f"a blend at {delay} s"
        assert not [p for p in data.iterdir() if ".tmp" in p.name]
        load_prepared(data)  # and the loader accepts it
        if prepared() == new:  # go on interrupting from the old state
            run_to_end(project_root, "prep_data.py", "--data", data, "--seed", "1")
    run_to_end(project_root, "prep_data.py", "--data", data, "--seed", "2")
    assert prepared() == new


def check_run_is_one_epochs_files(run):
    """state.json, history.csv and the checkpoints all describe the same last epoch."""
    import keras

    if not (run / "state.json").exists():  # stopped as the run was starting: it left an empty folder
        assert list(run.iterdir()) == []
        return 0
    state = json.loads((run / "state.json").read_text())
    done = state["epochs_done"]
    rows = (run / "history.csv").read_text().splitlines()[1:] if (run / "history.csv").exists() else []
    assert len(rows) == done
    if done:
        keras.models.load_model(run / "last.keras")
        keras.models.load_model(run / "best.keras")
    assert not [p for p in run.iterdir() if ".tmp" in p.name]
    return done


def test_training_leaves_whole_epochs_and_resumes(tmp_path, make_prepared_data, project_root):
    data = make_prepared_data(tmp_path / "data", n_train=480, n_test=60)
    model, runs = tmp_path / "res" / "model.keras", tmp_path / "runs"
    start_new = ["--data", data, "--model", model, "--runs", runs, "--epochs", "3", "--batch-size", "32", "--no-tta"]
    resume = ["--data", data, "--runs", runs, "--resume"]  # the run knows its --model

    def resumable():
        return runs.exists() and any((run / "last.keras").exists() for run in runs.iterdir())

    # First as the model is built and model.fit starts tracing: a Ctrl-C there once came out of TensorFlow
    # as an unrelated TypeError, or was swallowed and the run went on. Logged just before: the data's sizes.
    process = start(project_root, "training.py", *start_new)
    while not (line := process.stdout.readline().decode()).startswith("train ") and line:
        pass
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=300)[1].decode()
    assert process.returncode == 128 + signal.SIGINT, err[-2000:]
    assert "continue with `python training.py --resume`" in err and "Traceback" not in err
    epochs_done = {}
    # SIGTERM is sent to clean_data.py here and to the analyzer in test_analyzer.
    for delay, signum in ((6.0, signal.SIGINT), (12.0, signal.SIGHUP)):
        code = stop_after(start(project_root, "training.py", *(resume if resumable() else start_new)), delay, signum)
        assert stopped_by(code, signum), code
        for run in runs.iterdir() if runs.exists() else []:
            done = check_run_is_one_epochs_files(run)
            assert done >= epochs_done.get(run, 0)  # never a step back
            epochs_done[run] = done
        # The model and its JSON are written as a pair: both or neither.
        assert model.exists() == model.with_suffix(".json").exists()
    out = run_to_end(project_root, "training.py", *(resume if resumable() else start_new))
    assert "test accuracy" in out
    finished = [run for run in runs.iterdir() if check_run_is_one_epochs_files(run) == 3]
    assert len(finished) == 1
    assert json.loads(model.with_suffix(".json").read_text())["epochs_trained"] == 3
