"""Training on several workers (--strategy multiworker): two worker processes on localhost, as a
cluster runs them, and the checks that refuse a cluster that cannot work before anything starts."""

import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from emotion_analyzer.commands import train as training
from emotion_analyzer.training.distribute import ENVIRONMENT, Worker, worker_from
from emotion_analyzer.errors import UserError
from emotion_analyzer.training.evaluate import read_history
from emotion_analyzer.core.model import load_trained_model
from emotion_analyzer.data.prepared import load_prepared

WORKERS = 2


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def prepared_faces(data):
    return np.asarray(load_prepared(data)[2], dtype=np.float32)


def start_workers(project_root, data, tmp_path, *extra):
    """Two workers of one run; worker 1 is given its own --model and --runs, so anything it wrote there
    would show."""
    coordinator = f"localhost:{free_port()}"
    workers = []
    for index in range(WORKERS):
        own = tmp_path / f"worker{index}"
        command = [sys.executable, str(project_root / "training.py"), "--data", str(data),
                   "--model", str(own / "m.keras"), "--runs", str(own / "runs"), "--run-dir",
                   str(tmp_path / "run"), "--strategy", "multiworker",
                   "--coordinator", coordinator, "--num-workers", str(WORKERS), "--worker-index", str(index),
                   *extra]
        workers.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}))
    outputs = []
    for worker in workers:
        try:
            out, err = worker.communicate(timeout=420)
        except subprocess.TimeoutExpired:
            for w in workers:
                w.kill()
            raise
        outputs.append((worker.returncode, out, err))
    return outputs


@pytest.mark.slow
def test_two_workers_on_localhost_train_one_model_that_the_chief_alone_saves_and_both_resume(prepared_data, tmp_path,
                                                                                             project_root):
    fast = ("--batch-size", "24", "--augment", "light", "--tta", "flip")
    first = start_workers(project_root, prepared_data, tmp_path, "--epochs", "1", *fast)
    assert [code for code, _, _ in first] == [0, 0], [err[-1500:] for _, _, err in first]
    chief_out, worker_out = first[0][1], first[1][1]
    assert "saved" in chief_out and "test accuracy" in chief_out
    assert "the chief (worker 0) evaluates and saves the model" in worker_out and "test accuracy" not in worker_out
    assert not (tmp_path / "worker1").exists()  # the other worker wrote nothing of its own
    # One epoch of each worker's half of every batch: 216 training images in 9 batches of 24.
    assert "9/9" in chief_out and "9/9" in worker_out

    resumed = start_workers(project_root, prepared_data, tmp_path, "--resume", "--epochs", "2")
    assert [code for code, _, _ in resumed] == [0, 0], [err[-1500:] for _, _, err in resumed]
    assert "resuming after epoch 1" in resumed[1][1]
    assert len(read_history(tmp_path / "run" / "history.csv")["loss"]) == 2
    model_path = tmp_path / "worker0" / "m.keras"
    model, info = load_trained_model(model_path)  # on TensorFlow, as the analyzer loads it
    assert info["recipe"]["strategy"] == "multiworker" and info["epochs_trained"] == 2
    assert info["test_metrics"]["accuracy"] > 0.5  # the generated faces are learnable: 1/6 is chance
    probabilities = model.predict(prepared_faces(prepared_data), verbose=0)
    assert probabilities.shape == (60, 6) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert not (tmp_path / "worker1").exists()


def test_a_worker_resuming_another_copy_of_the_run_ends_every_worker_with_one_line(prepared_data, tmp_path):
    """What each worker would resume is compared before anyone joins JAX: here the chief's run folder is
    after epoch 2 and worker 1's copy after epoch 1 (another --run-dir)."""
    from emotion_analyzer.training.recipe import Recipe
    from emotion_analyzer.training.runs import new_state, STATE_FILE, LAST_CHECKPOINT
    from emotion_analyzer.training.trainer import resume
    from emotion_analyzer.common.fileio import write_json_atomic

    for name, epochs in (("run", 2), ("copy", 1)):
        (tmp_path / name).mkdir()
        state = new_state(Recipe(strategy="multiworker"), ["angry"], None, tmp_path / "m.keras")
        write_json_atomic(tmp_path / name / STATE_FILE, {**state, "epochs_done": epochs})
        (tmp_path / name / LAST_CHECKPOINT).write_bytes(f"a checkpoint after epoch {epochs}".encode())
    coordinator = f"localhost:{free_port()}"
    errors = {}

    def worker(index, run):
        try:
            resume(prepared_data, run_dir=tmp_path / run, worker=Worker(coordinator, WORKERS, index, 20),
                   log=lambda _: None)
        except UserError as exc:
            errors[index] = str(exc)

    threads = [threading.Thread(target=worker, args=(0, "run")), threading.Thread(target=worker, args=(1, "copy"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    expected = "worker 1 would resume after epoch 1, the chief after epoch 2: give every worker the same --run-dir"
    assert errors == {0: expected, 1: expected}


def test_the_cluster_is_read_from_keras_variables_when_the_flags_are_not_given():
    environ = {ENVIRONMENT["coordinator"]: "10.0.0.1:1234,10.0.0.2:2345", ENVIRONMENT["num_workers"]: "2",
               ENVIRONMENT["worker_index"]: "1"}
    assert worker_from(environ=environ) == Worker("10.0.0.1:1234", 2, 1)
    assert worker_from("localhost:9", 3, 0, environ=environ) == Worker("localhost:9", 3, 0)
    assert not worker_from(environ=environ).is_chief and Worker("h:1", 2, 0).is_chief


@pytest.mark.parametrize("argv, message", [
    (["--coordinator", "h:1"], "--coordinator is for --strategy multiworker"),
    (["--strategy", "multiworker", "--run-dir", "r"], "needs --coordinator (or KERAS_DISTRIBUTION_JOB_ADDRESSES),"
                                                      " --num-workers"),
    (["--strategy", "multiworker", "--coordinator", "h:1", "--num-workers", "2", "--worker-index", "0"],
     "name the run folder with --run-dir"),
    (["--strategy", "multiworker", "--coordinator", "h:1", "--num-workers", "2", "--worker-index", "2",
      "--run-dir", "r"], "--worker-index 2 with --num-workers 2: expected an index from 0 to 1"),
    (["--strategy", "multiworker", "--coordinator", "nohost", "--num-workers", "2", "--worker-index", "0",
      "--run-dir", "r"], "--coordinator nohost: expected the chief's HOST:PORT"),
    (["--strategy", "multiworker", "--coordinator", "h:1", "--num-workers", "3", "--worker-index", "0",
      "--run-dir", "r", "--batch-size", "64"], "--batch-size 64 does not split evenly among 3 workers"),
])
def test_a_cluster_that_cannot_work_is_refused_in_one_line_before_anything_starts(argv, message, monkeypatch):
    for variable in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    args = training.parse_args(argv)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        training.cluster_worker(args, None if args.resume else training.recipe_from_args(args))
    assert os.environ.get("KERAS_BACKEND") != "jax"
