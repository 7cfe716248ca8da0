"""Run folders: where a training run keeps its checkpoints and state, so it can be resumed."""

import datetime
import json
from dataclasses import asdict
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.data.prepared import read_manifest
from emotion_analyzer.errors import UserError

STATE_FILE = "state.json"
LAST_CHECKPOINT = "last.keras"
BEST_CHECKPOINT = "best.keras"
HISTORY_FILE = "history.csv"


def new_run_dir(runs_dir):
    """A new folder runs_dir/<date-time>, with a suffix when another run started in the same second."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    runs_dir = Path(runs_dir)
    for attempt in range(1, 1000):
        path = runs_dir / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise UserError(f"{runs_dir}: 999 runs started in the same second; wait a second and start again")


def new_state(recipe, categories, limit, model_path, data_dir=None):
    """What a run must remember to resume as it started: recipe, images used (the prepared set's folder
    and its files' fingerprints) and where the model goes."""
    state = {"recipe": asdict(recipe), "epochs_done": 0, "best_val_accuracy": -1.0, "best_epoch": 0,
             "labels": list(categories), "limit": limit, "model": str(Path(model_path).resolve()),
             "started": datetime.datetime.now().isoformat(timespec="seconds")}
    if data_dir is not None:
        state["data"] = str(Path(data_dir).resolve())
        state["data_files"] = read_manifest(data_dir)[0]
    return state


def data_dir_of(state, run_dir, given=None):
    """The prepared set a resumed run goes on with: `given` (--data), else the one it was started on; a
    UserError when that set is not the one the run was trained on (prep_data.py ran again since)."""
    data_dir = Path(given or state.get("data") or config.DEFAULT_DATA_DIR)
    if given is None and "data" not in state and not (data_dir / config.PREPARED_MANIFEST).is_file():
        raise UserError(f"{run_dir} was started before runs remembered their --data, and {data_dir} holds no prepared"
                        " set: pass --data FOLDER with --resume")
    if "data_files" in state and read_manifest(data_dir)[0] != state["data_files"]:
        raise UserError(f"{data_dir} is not the prepared set {run_dir} was trained on (prep_data.py has written"
                        " it again since, or it is another set): resume with the --data it started with, or start a"
                        " new run without --resume")
    return data_dir


def latest_resumable_run(runs_dir):
    runs = sorted((p for p in Path(runs_dir).glob("*")
                   if (p / STATE_FILE).is_file() and (p / LAST_CHECKPOINT).is_file()),
                  key=lambda p: (p / STATE_FILE).stat().st_mtime)
    if not runs:
        raise UserError(f"--resume: no run with a checkpoint under {runs_dir}; start one without --resume")
    return runs[-1]


def check_checkpoint(run_dir):
    """A UserError unless `run_dir` is a run folder that has finished an epoch (--evaluate --run-dir)."""
    if not (Path(run_dir) / STATE_FILE).is_file():
        raise UserError(f"--run-dir {run_dir}: not a run folder (no {STATE_FILE}); name a folder under runs/")
    if not (Path(run_dir) / LAST_CHECKPOINT).is_file():
        raise UserError(f"--run-dir {run_dir}: no {LAST_CHECKPOINT} yet; a run writes it when its first epoch ends")


def load_state(run_dir):
    path = Path(run_dir) / STATE_FILE
    if not (path.is_file() and (Path(run_dir) / LAST_CHECKPOINT).is_file()):
        raise UserError(f"--resume: {run_dir} has no {STATE_FILE} and {LAST_CHECKPOINT} to resume from;"
                        " start a new run without --resume")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); start a new run without --resume") from None


def model_path_of(state, run_dir, given=None):
    """Where a resumed run saves its model: `given` (--model), else where the run was started to save it."""
    if given is not None:
        return Path(given)
    if "model" not in state:
        raise UserError(f"{run_dir} was started before runs remembered their --model: pass --model PATH with"
                        f" --resume (the shipped model is {config.portable_path(config.DEFAULT_MODEL_PATH)})")
    return Path(state["model"])
