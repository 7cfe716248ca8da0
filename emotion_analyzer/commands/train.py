"""Train the emotion CNN on data/*.pickle, evaluate it on the test set and save it with its evidence.

The default run trains the original architecture with a better recipe (augmentation, validation
split, cosine learning rate, best checkpoint, test-time views: mirror and shifts); --original repeats the
original run exactly. Every epoch is checkpointed: --resume continues an interrupted run with its own
recipe and model path (only --epochs, --tta and --precision may change).

examples:
  python training.py                                  # the default recipe, saved to res/emotion_model.keras
  python training.py --epochs 5 --model /tmp/m.keras  # a quick run that leaves the shipped model alone
  python training.py --resume                         # continue the latest run after Ctrl-C or a crash
  python training.py --evaluate                       # judge the shipped model again (new votes, new test set)
  python training.py --evaluate --run-dir runs/X --tta none   # how a run still training is doing, one view
"""

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.common.device import hide_gpus
from emotion_analyzer.common.cli import non_negative_int, Parser, positive_float, positive_int, run_cli
from emotion_analyzer.common.fileio import check_output_folder, check_output_path
from emotion_analyzer.common.stops import at_safe_points, exit_code
from emotion_analyzer.core.model import check_model_file
from emotion_analyzer.data.prepared import read_manifest
from emotion_analyzer.errors import UserError
from emotion_analyzer.training.distribute import STRATEGY as STRATEGY_MULTIWORKER
from emotion_analyzer.training.distribute import use_jax_backend, worker_from
from emotion_analyzer.training.rendezvous import JOIN_TIMEOUT
from emotion_analyzer.training.runs import check_checkpoint, data_dir_of, latest_resumable_run, load_state
from emotion_analyzer.training.recipe import check_start_from, option_name, Recipe


def parse_args(argv):
    default = Recipe()
    parser = Parser(description=__doc__)
    parser.add_argument("--data", type=Path, default=None,
                        help=f"folder with the pickles from prep_data.py (default: {config.DEFAULT_DATA_DIR}; with"
                             " --resume, the run's own)")
    parser.add_argument("--model", type=Path, default=None,
                        help="where the trained model (.keras) and its .json go (default:"
                             f" {config.DEFAULT_MODEL_PATH}; with --resume, where the run was started to save it)")
    parser.add_argument("--runs", type=Path, default=config.DEFAULT_RUNS_DIR,
                        help="folder for run folders with checkpoints, logs and plots (default: %(default)s)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="use this run folder (default: a new runs/<time>/, or the latest with --resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the latest (or --run-dir) run from its last checkpoint, with its recipe")
    parser.add_argument("--evaluate", action="store_true",
                        help="train nothing: judge the model at --model again on --data's test faces (by the crowd's"
                             " votes too, when the set has them) and rewrite its JSON's test metrics and evidence;"
                             " with --run-dir, judge that run's last checkpoint as the run will save it and write"
                             " nothing (how a run is doing while it trains)")
    parser.add_argument("--original", action="store_true",
                        help="the original run exactly: batch 64, 12 epochs, no augmentation, constant Adam 1e-3")
    recipe = parser.add_argument_group("recipe (saved with the run; --resume refuses changes but to --epochs, --tta, --precision)")
    add_recipe_options(recipe, default)
    cluster = parser.add_argument_group(
        "several machines (--strategy multiworker; each worker runs the same command with its own --worker-index,"
        " and --run-dir names one folder; unset flags are read from KERAS_DISTRIBUTION_JOB_ADDRESSES,"
        " _NUM_PROCESSES and _PROCESS_ID)")
    cluster.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                         help="where worker 0, the chief, listens for the others")
    cluster.add_argument("--num-workers", type=positive_int, default=None, help="how many workers train together")
    cluster.add_argument("--worker-index", type=non_negative_int, default=None,
                         help="this worker's index, 0 to N-1; worker 0 writes the run folder and the model")
    cluster.add_argument("--join-timeout", type=positive_float, default=JOIN_TIMEOUT, metavar="SECONDS",
                         help="how long the workers wait for each other before each ends with the cause"
                              " (default: %(default)g)")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="use only the first N training images (quick experiments)")
    parser.add_argument("--cpu", action="store_true", help="hide GPUs and train on the CPU")
    args = parser.parse_args(argv)
    if args.resume and args.original:
        parser.error("--original with --resume: a resumed run keeps the recipe it started with")
    if args.resume and args.limit:
        parser.error("--limit with --resume: a resumed run uses the images it started with")
    if args.evaluate:
        given = [name for name in requested_fields(args) if name != "tta"]
        given += [flag for flag in ("resume", "original", "limit", "coordinator", "num_workers",
                                    "worker_index") if getattr(args, flag)]
        if given:
            parser.error(f"--evaluate judges a trained model and trains nothing: drop {option_name(given[0])}"
                         " (only --model or --run-dir, --data and --tta go with it)")
        if args.run_dir and args.model:
            parser.error("--evaluate judges either the model at --model or the checkpoint of the run at --run-dir:"
                         " drop one")
    return args


def add_recipe_options(group, default):
    """One option per Recipe field, declared by the field: its name (option_name), help, choices and type."""
    for field in fields(Recipe):
        meta = field.metadata
        value = getattr(default, field.name)
        help_text = f"{meta['help']} (default: {value})" if value != "" else meta["help"]
        if field.type is bool:
            group.add_argument(option_name(field.name), dest=field.name, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        else:
            group.add_argument(option_name(field.name), dest=field.name, type=meta["parse"] or field.type,
                               choices=meta["choices"], metavar=meta["metavar"], default=None, help=help_text)
        if field.name == "tta":
            group.add_argument("--no-tta", dest="tta", action="store_const", const="none", help="same as --tta none")


def requested_fields(args):
    """{Recipe field: value} for the recipe flags given on the command line."""
    values = {field.name: getattr(args, field.name, None) for field in fields(Recipe)}
    return {name: value for name, value in values.items() if value is not None}


def recipe_from_args(args):
    recipe = Recipe.original() if args.original else Recipe()
    for name, value in requested_fields(args).items():
        setattr(recipe, name, value)
    return recipe.check()


def cluster_worker(args, recipe):
    """This process's cluster.Worker for --strategy multiworker, else None; refuses what cannot work."""
    if args.strategy != STRATEGY_MULTIWORKER:
        given = [flag for flag in ("coordinator", "num_workers", "worker_index") if getattr(args, flag) is not None]
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} is for --strategy {STRATEGY_MULTIWORKER}: add it, or drop"
                            " the cluster flags")
        return None
    worker = worker_from(args.coordinator, args.num_workers, args.worker_index, join_timeout=args.join_timeout)
    if args.run_dir is None:
        raise UserError(f"--strategy {STRATEGY_MULTIWORKER}: name the run folder with --run-dir, the same on every"
                        " worker (the chief writes it; --resume reads it)")
    batch_size = recipe.batch_size if recipe else args.batch_size
    if batch_size and batch_size % worker.num_workers:
        raise UserError(f"--batch-size {batch_size} does not split evenly among {worker.num_workers} workers;"
                        f" choose a multiple of {worker.num_workers}")
    use_jax_backend()
    return worker


def resumed_data_dir(args):
    run_dir = args.run_dir or latest_resumable_run(args.runs)
    return data_dir_of(load_state(run_dir), run_dir, args.data)


def run_evaluation(args):
    if args.run_dir:
        return run_checkpoint_evaluation(args)
    model_path = args.model or config.DEFAULT_MODEL_PATH
    check_model_file(model_path)
    data_dir = args.data or config.DEFAULT_DATA_DIR
    read_manifest(data_dir)  # a missing or half-written set is said before TensorFlow starts
    if args.cpu:
        hide_gpus()
    from emotion_analyzer.common.device import start_tensorflow
    from emotion_analyzer.training.judging import reevaluate

    start_tensorflow()
    with at_safe_points():
        reevaluate(data_dir, model_path, args.tta)
    return 0


def run_checkpoint_evaluation(args):
    check_checkpoint(args.run_dir)
    data_dir = data_dir_of(load_state(args.run_dir), args.run_dir, args.data)
    read_manifest(data_dir)
    if args.cpu:
        hide_gpus()
    from emotion_analyzer.common.device import start_tensorflow
    from emotion_analyzer.training.judging import judge_checkpoint

    start_tensorflow()
    with at_safe_points():
        judge_checkpoint(args.run_dir, args.data, args.tta)
    return 0


def run_training(args):
    if args.evaluate:
        return run_evaluation(args)
    recipe = None if args.resume else recipe_from_args(args)  # bad flags are refused before the slow start
    worker = cluster_worker(args, recipe)
    if args.model is not None or not args.resume:
        check_output_path(args.model or config.DEFAULT_MODEL_PATH, "--model")
    check_output_folder(args.runs, "--runs")
    # A missing, half-written or changed set, or a --start-from model that does not fit, is said before TensorFlow
    # starts.
    data_dir = resumed_data_dir(args) if args.resume else args.data or config.DEFAULT_DATA_DIR
    categories = read_manifest(data_dir)[1]
    if recipe is not None and recipe.start_from:
        check_start_from(recipe, categories)
    if args.cpu:
        hide_gpus()
    from emotion_analyzer.common.device import start_tensorflow
    from emotion_analyzer.training.trainer import resume, train

    start_tensorflow()
    try:
        with at_safe_points():  # Keras stops at the end of the batch (callbacks.StopAtBatchEnd)
            if args.resume:
                resume(data_dir, args.runs, args.run_dir, args.model, requested_fields(args), worker=worker)
            else:
                train(data_dir, args.model or config.DEFAULT_MODEL_PATH, recipe, args.runs, args.run_dir,
                      args.limit, worker=worker)
    except KeyboardInterrupt as exc:
        print("interrupted: every finished epoch is checkpointed; continue with `python training.py --resume`",
              file=sys.stderr)
        return exit_code(exc)
    return 0


def main(argv=None) -> int:
    return run_cli(run_training, parse_args(argv))

