"""Train, checkpoint, resume and evaluate the emotion CNN (judging a saved model or a checkpoint
again, outside training: judging.py).

A run lives in its own folder (runs/<time>/): last.keras, history.csv and state.json after every
epoch (to resume after Ctrl-C or a crash), best.keras (best validation accuracy), metrics and plots.
The chosen model is then saved, float32 and with any batch normalisation folded away, to --model
with its JSON (labels first).
"""

import contextlib
import datetime
import hashlib
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.training.distribute import STRATEGY as STRATEGY_MULTIWORKER
from emotion_analyzer.training.distribute import is_chief, join, on_this_worker_only, wait_for_all
from emotion_analyzer.common.stops import raise_if_stopped
from emotion_analyzer.errors import UserError
from emotion_analyzer.common.fileio import write_json_atomic
from emotion_analyzer.common.stops import deferred
from emotion_analyzer.training.recipe import (CHANGEABLE_ON_RESUME, changed_fields, option_name, PRECISIONS,
                                              recipe_from_saved, SGD_MOMENTUM, STRATEGY_MIRRORED)
from emotion_analyzer.training.runs import (BEST_CHECKPOINT, data_dir_of, HISTORY_FILE,
                                            LAST_CHECKPOINT, latest_resumable_run, load_state, model_path_of,
                                            new_run_dir, new_state, STATE_FILE)

def strategy_scope(name):
    """Where the model is built: one device, all local GPUs (mirrored), or, for multiworker, under the
    cluster's distribution that cluster.join() has already set."""
    if name == STRATEGY_MULTIWORKER:
        return contextlib.nullcontext()
    import tensorflow as tf

    if name == STRATEGY_MIRRORED:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices).scope()
    return tf.distribute.get_strategy().scope()


def build_for_training(recipe, num_classes, precision):
    """The recipe's model, compiled, in `precision` (the dtype policy applies while layers are built)."""
    import keras

    from emotion_analyzer.core.model import build_model

    keras.config.set_dtype_policy(PRECISIONS[precision])
    try:
        model = build_model(config.FACE_SHAPE, num_classes, recipe.scaling, recipe.batch_norm, recipe.equalize)
    finally:
        keras.config.set_dtype_policy("float32")
    compile_model(model, recipe)
    return model


def compile_model(model, recipe):
    import keras

    if recipe.soft_targets:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    decay = recipe.weight_decay or None
    if recipe.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(recipe.learning_rate, momentum=SGD_MOMENTUM, nesterov=True,
                                         weight_decay=decay)
    else:
        optimizer = keras.optimizers.Adam(recipe.learning_rate, weight_decay=decay)
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])


def in_precision(model, recipe, num_classes, precision):
    """`model` (a checkpoint) computing in `precision`: itself when it already does, else the same
    weights and optimizer state in a model built for it (a run resumed on a machine of another kind)."""
    if model.get_layer("conv_50").dtype_policy.name == PRECISIONS[precision]:
        return model
    converted = build_for_training(recipe, num_classes, precision)
    converted.set_weights(model.get_weights())
    converted.optimizer.build(converted.trainable_variables)
    for target, source in zip(converted.optimizer.variables, model.optimizer.variables):
        target.assign(source)
    return converted


def inference_model(trained, recipe, num_classes):
    """The model to ship: the original's layers in float32, batch normalisation folded into them."""
    from emotion_analyzer.core.model import build_model, fold_batch_norm

    return fold_batch_norm(trained, build_model(config.FACE_SHAPE, num_classes, recipe.scaling,
                                                equalized=recipe.equalize))


def train(data_dir, model_path, recipe, runs_dir=config.DEFAULT_RUNS_DIR, run_dir=None, limit=None, log=print,
          worker=None):
    """Start a run: train, evaluate on the test set, save the model and its evidence; return its info
    (None on a worker that is not the chief: `worker`, a cluster.Worker, joins a multi-worker run)."""
    recipe.check()
    if run_dir is not None and (Path(run_dir) / STATE_FILE).exists():
        raise UserError(f"--run-dir {run_dir} already holds a run: continue it with --resume, or choose another")
    if worker is not None:  # after the check: the chief writes the run's state only once every worker has joined
        join(worker, run_plan(recipe, data_dir, limit, epochs_done=0), log)
    data = load_training_data(data_dir, limit)
    state = new_state(recipe, data["categories"], limit, model_path, data_dir)
    if is_chief():
        run_dir = Path(run_dir) if run_dir else new_run_dir(runs_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / STATE_FILE, state)
    return run(data, Path(model_path), recipe, Path(run_dir), state, resuming=False, log=log)


def resume(data_dir=None, runs_dir=config.DEFAULT_RUNS_DIR, run_dir=None, model_path=None, requested=None, log=print,
           worker=None):
    """Continue a run from its last checkpoint with its own recipe, prepared set (unless `data_dir`: it
    must hold the same set) and model path (unless `model_path`).

    `requested` ({field: value}, the flags given with --resume) may lengthen the schedule and change
    the test-time views; any other change is refused, since the run would no longer be what it says.
    """
    run_dir = Path(run_dir) if run_dir else latest_resumable_run(runs_dir)
    state = load_state(run_dir)
    data_dir = data_dir_of(state, run_dir, data_dir)
    recipe = recipe_from_saved(state["recipe"])
    requested = requested or {}
    refused = [name for name in changed_fields(recipe, requested) if name not in CHANGEABLE_ON_RESUME]
    if refused:
        listed = ", ".join(f"{option_name(n)} {requested[n]} (the run's: {getattr(recipe, n)})" for n in refused)
        raise UserError(f"--resume continues {run_dir} with its own recipe, but {listed} differ: drop them, or start a"
                        " new run without --resume")
    recipe = replace(recipe, **{n: v for n, v in requested.items() if n in CHANGEABLE_ON_RESUME}).check()
    if (recipe.strategy == STRATEGY_MULTIWORKER) != (worker is not None):
        raise UserError(f"{run_dir} was trained with --strategy {recipe.strategy}: resume it the same way")
    if worker is not None:
        join(worker, run_plan(recipe, data_dir, state.get("limit"), state["epochs_done"], run_dir / LAST_CHECKPOINT),
             log)
    state["recipe"] = asdict(recipe)
    data = load_training_data(data_dir, state.get("limit"))  # the same images, or the validation split shifts
    model_path = model_path_of(state, run_dir, model_path)
    return run(data, model_path, recipe, run_dir, state, resuming=True, log=log)


def run_plan(recipe, data_dir, limit, epochs_done, checkpoint=None):
    """What every worker of a multi-worker run must share, as digests the chief compares (rendezvous.py)."""
    from emotion_analyzer.data.prepared import read_manifest

    def digest(data):
        return hashlib.blake2b(data, digest_size=8).hexdigest()

    return {"version": config.VERSION, "recipe": digest(json.dumps(asdict(recipe), sort_keys=True).encode()),
            "data": digest(json.dumps([read_manifest(data_dir), limit], sort_keys=True).encode()),
            "epochs_done": epochs_done, "checkpoint": digest(Path(checkpoint).read_bytes()) if checkpoint else ""}


def load_training_data(data_dir, limit):
    from emotion_analyzer.training.inputs import check_arrays
    from emotion_analyzer.data.prepared import load_prepared, load_prepared_votes

    x_train, y_train, x_test, y_test, categories, leak = load_prepared(data_dir)
    votes_train, votes_test = load_prepared_votes(data_dir, len(y_train), len(y_test)) or (None, None)
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
        votes_train = None if votes_train is None else votes_train[:limit]
    x_train, y_train, x_test, y_test = check_arrays(x_train, y_train, x_test, y_test, categories, data_dir)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "categories": categories,
            "leak": leak, "data_dir": data_dir, "votes_train": votes_train, "votes_test": votes_test}


def fit_targets(data, recipe, log):
    """What the model learns to output for each training face: class indices, or distributions
    (labels smoothed by the loss, mixed with the crowd's votes by recipe.crowd where the face has them)."""
    from emotion_analyzer.data.prepared import describe_coverage
    from emotion_analyzer.training.inputs import training_targets

    if not recipe.soft_targets:
        return data["y_train"]
    votes = data["votes_train"]
    if recipe.crowd and votes is None:
        log(f"no crowd votes in {data['data_dir']}: --crowd {recipe.crowd} has nothing to mix, so the targets are"
            " its labels (clean_data.py --votes, then prep_data.py, adds them)")
    elif recipe.crowd:
        log(f"targets: {1 - recipe.crowd:.0%} label, {recipe.crowd:.0%} the crowd's votes;"
            f" {describe_coverage(votes, data['categories'])}")
    return training_targets(data["y_train"], votes, data["categories"], recipe.crowd)


def validation_split(data, recipe):
    """(train indices, validation indices) of the training images, refused when a split cannot work."""
    from emotion_analyzer.training.inputs import stratified_validation_split

    y_train = data["y_train"]
    train_idx, val_idx = stratified_validation_split(y_train, recipe.val_split, recipe.seed)
    if recipe.val_split and not len(val_idx):
        raise UserError(f"{data['data_dir']}: too few training images ({len(y_train)}) to hold out a validation set")
    if recipe.strategy == STRATEGY_MULTIWORKER and len(val_idx) and len(val_idx) < recipe.batch_size:
        raise UserError(f"--strategy {STRATEGY_MULTIWORKER} validates in whole batches, and the {len(val_idx)} validation"
                        f" images do not fill one of --batch-size {recipe.batch_size}: lower it or raise --val-split")
    return train_idx, val_idx


def model_for_run(recipe, run_dir, state, num_classes, precision, resuming, validating, log):
    """The model to fit: the last checkpoint of a resumed run (in `precision`), else a new one."""
    import keras

    with strategy_scope(recipe.strategy):
        if not resuming:
            model = build_for_training(recipe, num_classes, precision)
            if recipe.start_from:
                take_weights_of_start_model(model, recipe, log)
            return model
        model = in_precision(keras.models.load_model(run_dir / LAST_CHECKPOINT), recipe, num_classes, precision)
    so_far = f"best validation accuracy so far {state['best_val_accuracy']:.4f}" if validating else "no validation"
    log(f"resuming after epoch {state['epochs_done']} ({so_far})")
    return model


def take_weights_of_start_model(model, recipe, log):
    """Fine-tuning: `model`, newly built, takes the weights of the trained model recipe.start_from
    (checked by check_start_from before TensorFlow started)."""
    from emotion_analyzer.core.model import load_trained_model

    start, info = load_trained_model(recipe.start_from)
    try:
        model.set_weights(start.get_weights())
    except ValueError as exc:
        raise UserError(f"--start-from {recipe.start_from}: its layers are not this recipe's ({str(exc)[:120]}); start"
                        " from a model training.py saved, or drop --start-from") from None
    trained = info.get("epochs_trained")
    log(f"starting from the weights of {recipe.start_from}"
        + (f" ({trained} epochs trained, test accuracy {info['test_metrics']['accuracy']:.4f})"
           if trained and "accuracy" in info.get("test_metrics", {}) else ""))


def run(data, model_path, recipe, run_dir, state, resuming, log):
    """Fit from the state's epoch to recipe.epochs, then evaluate the best checkpoint and save it."""
    import keras

    from emotion_analyzer.training.callbacks import make_callbacks
    from emotion_analyzer.common.device import choose_precision, describe_device
    from emotion_analyzer.training.inputs import balanced_class_weights, make_dataset, make_training_batches

    categories, num_classes = data["categories"], len(data["categories"])
    x_train, y_train = data["x_train"], fit_targets(data, recipe, log)
    train_idx, val_idx = validation_split(data, recipe)
    validating = len(val_idx) > 0
    if resuming and state["epochs_done"] >= recipe.epochs:
        log(f"{run_dir}: already trained {state['epochs_done']} epochs; pass --epochs N (more) to continue")

    keras.utils.set_random_seed(recipe.seed + state["epochs_done"])
    log(f"device: {describe_device()}; run folder: {run_dir}; model: {model_path}")
    precision, reason = choose_precision(recipe.precision)
    log(f"precision: {precision} ({reason})")
    state.setdefault("precision_by_session", []).append(
        {"from_epoch": state["epochs_done"], "precision": precision, "reason": reason})
    log(f"train {len(train_idx):,}, validation {len(val_idx):,}, test {len(data['y_test']):,} images;"
        f" {num_classes} emotions: {', '.join(categories)}")
    if not validating:
        log("no validation set: no early stopping; the model saved is the last epoch's")

    model = model_for_run(recipe, run_dir, state, num_classes, precision, resuming, validating, log)

    in_terminal = sys.stdout.isatty()  # else a log: Keras prints a line per epoch, ProgressLines more
    callbacks = make_callbacks(recipe, run_dir, state, validating, writes=is_chief(), log_lines=not in_terminal)
    started = datetime.datetime.now()
    if state["epochs_done"] < recipe.epochs:
        val_data = (make_dataset(x_train[val_idx], y_train[val_idx], recipe, num_classes, training=False)
                    if validating else None)
        train_set, steps = make_training_batches(x_train[train_idx], y_train[train_idx], recipe, num_classes)
        model.fit(train_set, steps_per_epoch=steps,
                  validation_data=val_data, epochs=recipe.epochs, initial_epoch=state["epochs_done"],
                  class_weight=(balanced_class_weights(data["y_train"][train_idx], num_classes) if recipe.class_weight
                                else None),
                  shuffle=False, verbose=1 if in_terminal else 2,
                  callbacks=callbacks)
    seconds = (datetime.datetime.now() - started).total_seconds()
    if not is_chief():
        wait_for_all("model saved")  # leaving now would end the cluster under the chief
        log("trained; the chief (worker 0) evaluates and saves the model")
        return None
    if any(getattr(callback, "diverged_in", None) for callback in callbacks):
        raise UserError(f"the loss became NaN in epoch {state['epochs_done'] + 1}; the last good checkpoint is"
                        f" {run_dir / LAST_CHECKPOINT} (epoch {state['epochs_done']}). Lower --lr and --resume")
    if not (run_dir / BEST_CHECKPOINT).is_file():
        raise UserError(f"{run_dir}: no epoch finished with a finite loss, so there is no model to save; lower --lr")
    with on_this_worker_only():
        info = evaluate_and_save(data, model_path, recipe, run_dir, state, validating, len(train_idx), len(val_idx),
                                 seconds, log)
    wait_for_all("model saved")
    return info


def judge_on_test_set(model, data, info, tta):
    """`model`'s test metrics with the `tta` views (by the crowd too, when `data` has test votes), its
    faces read as its JSON `info` says they must be."""
    from emotion_analyzer.core.model import as_the_model_reads
    from emotion_analyzer.training.evaluate import evaluate

    x_test = as_the_model_reads(data["x_test"], info)
    return evaluate(model, x_test, data["y_test"], data["categories"], data["leak"], tta, data["votes_test"])


def evaluate_and_save(data, model_path, recipe, run_dir, state, validating, n_train, n_val, seconds, log):
    import keras

    from emotion_analyzer.core.framing import framings_for_json
    from emotion_analyzer.training.evaluate import format_metrics, read_history, write_evidence
    from emotion_analyzer.core.model import input_contract, plot_architecture, save_trained_model


    categories = data["categories"]
    best = inference_model(keras.models.load_model(run_dir / BEST_CHECKPOINT), recipe, len(categories))
    contract = input_contract(recipe.equalize)
    metrics = judge_on_test_set(best, data, {"input": contract}, recipe.tta)
    metrics["best_epoch"] = state["best_epoch"]
    metrics["best_val_accuracy"] = state["best_val_accuracy"] if validating else None
    info = {
        "labels": list(categories),
        "input": contract,
        # how the analyzer crops each detector's face boxes to look like the training faces
        "framings": framings_for_json(),
        "recipe": asdict(recipe),
        "precision_by_session": state.get("precision_by_session", []),
        "dataset": {"data_dir": config.portable_path(data["data_dir"]), "train": int(n_train),
                    "validation": int(n_val), "test": int(len(data["y_test"]))},
        "test_metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"},
        "epochs_trained": state["epochs_done"],
        "training_seconds_this_session": round(seconds, 1),
        "run_dir": config.portable_path(run_dir),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    raise_if_stopped()  # a stop asked for during the evaluation: leave the model at --model as it was
    # The model first, then evidence: a plotting error must never cost a training run.
    with deferred():
        save_trained_model(best, model_path, info)
    history = read_history(run_dir / HISTORY_FILE)
    write_evidence(run_dir, metrics, history, categories)
    write_evidence(model_path.parent, metrics, history, categories, prefix=f"{model_path.stem}_")
    plot_architecture(best, model_path.parent / f"{model_path.stem}_architecture.png")
    for line in format_metrics(metrics):
        log(line)
    log(f"saved {model_path} and {config.model_info_path(model_path).name}; evidence in {run_dir}")
    return info
