"""Judge a trained model again outside training: a saved model on its prepared set (its JSON and
evidence rewritten), or a run's last checkpoint while the run still trains (nothing written)."""

import datetime
import shutil
import tempfile
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.common.stops import raise_if_stopped
from emotion_analyzer.errors import UserError
from emotion_analyzer.training.recipe import Recipe, recipe_from_saved
from emotion_analyzer.training.runs import check_checkpoint, data_dir_of, LAST_CHECKPOINT, load_state
from emotion_analyzer.training.trainer import inference_model, judge_on_test_set, load_training_data


def reevaluate(data_dir, model_path, tta=None, log=print):
    """Judge a saved model again on the prepared set's test faces, by FER2013's labels and, when the set
    has them, the crowd's votes: its JSON's test metrics and its evidence are rewritten, the model itself
    is not touched (a model trained before the set had votes gets the crowd's figures this way)."""
    from emotion_analyzer.core.model import load_trained_model, save_model_info
    from emotion_analyzer.training.evaluate import format_metrics, write_evidence

    model_path = Path(model_path)
    model, info = load_trained_model(model_path)
    data = load_training_data(data_dir, None)
    if list(data["categories"]) != list(info["labels"]):
        raise UserError(f"{model_path} reads {', '.join(info['labels'])} but {data_dir} holds"
                        f" {', '.join(data['categories'])}: judge it on the set it was trained for (--data)")
    tta = tta or info.get("recipe", {}).get("tta") or Recipe().tta
    if data["votes_test"] is None:
        log(f"no crowd votes in {data_dir}: judged by its labels only (clean_data.py --votes, then prep_data.py,"
            " adds them)")
    metrics = judge_on_test_set(model, data, info, tta)
    old = info.get("test_metrics", {})
    metrics.update({key: old.get(key) for key in ("best_epoch", "best_val_accuracy")})
    raise_if_stopped()  # a stop asked for during the evaluation: leave the JSON as it was
    info["test_metrics"] = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    info["judged"] = {"data_dir": config.portable_path(data_dir), "test": int(len(data["y_test"])),
                      "date": datetime.datetime.now().isoformat(timespec="seconds")}
    save_model_info(model_path, info)
    # no history: judging again leaves the training curves as training drew them
    write_evidence(model_path.parent, metrics, None, data["categories"], prefix=f"{model_path.stem}_")
    for line in format_metrics(metrics):
        log(line)
    log(f"judged {model_path} again: {config.model_info_path(model_path).name} and its evidence rewritten")
    return info


def judge_checkpoint(run_dir, data_dir=None, tta=None, log=print):
    """Judge a run's last checkpoint on its prepared set's test faces as the run would save it (float32,
    batch norm folded), training and writing nothing: how a run is doing while it still trains."""
    import keras

    from emotion_analyzer.core.model import input_contract
    from emotion_analyzer.training.evaluate import format_metrics

    run_dir = Path(run_dir)
    check_checkpoint(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        # A copy: a run still training replaces its checkpoint each epoch. The state is read after it,
        # as each epoch writes the checkpoint before the state, so the two name the same epoch.
        copy = Path(tmp) / LAST_CHECKPOINT
        shutil.copyfile(run_dir / LAST_CHECKPOINT, copy)
        state = load_state(run_dir)
        trained = keras.models.load_model(copy)
    recipe = recipe_from_saved(state["recipe"])
    data = load_training_data(data_dir_of(state, run_dir, data_dir), state.get("limit"))
    model = inference_model(trained, recipe, len(data["categories"]))
    metrics = judge_on_test_set(model, data, {"input": input_contract(recipe.equalize)}, tta or recipe.tta)
    log(f"{run_dir}: the checkpoint after epoch {state['epochs_done']} of {recipe.epochs}, read as the run will"
        " save it (nothing written)")
    for line in format_metrics(metrics):
        log(line)
    return metrics
