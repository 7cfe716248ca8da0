"""Train the emotion CNN on data/*.pickle, evaluate it on the test set and save it with its evidence.

The default run trains the original architecture with a better recipe (augmentation, validation
split, cosine learning rate, best checkpoint, test-time views: mirror and shifts); --original repeats the
original run exactly. Every epoch is checkpointed: --resume continues an interrupted run.
"""

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.cli import EXIT_INTERRUPTED, run_cli
from emotion_analyzer.classify import TTA_SHIFT, TTA_VIEWS
from emotion_analyzer.model import INITIALIZERS, INPUT_SCALINGS
from emotion_analyzer.training import AUGMENTATIONS, ERASE_AREA, OPTIMIZERS, PRECISIONS, SGD_MOMENTUM, Recipe


def parse_args(argv):
    default = Recipe()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=config.DEFAULT_DATA_DIR,
                        help="folder with the pickles from prep_data.py (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH,
                        help="where the trained model (.keras) and its .json go (default: %(default)s)")
    parser.add_argument("--runs", type=Path, default=config.DEFAULT_RUNS_DIR,
                        help="folder for run folders with checkpoints, logs and plots (default: %(default)s)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="use this run folder (default: a new runs/<time>/, or the latest with --resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the latest (or --run-dir) run from its last checkpoint, with its recipe")
    parser.add_argument("--original", action="store_true",
                        help="the original run exactly: batch 64, 12 epochs, no augmentation, constant Adam 1e-3")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs in all (default: {default.epochs})")
    parser.add_argument("--batch-size", type=int, default=None, help=f"batch size (default: {default.batch_size})")
    parser.add_argument("--lr", type=float, default=None, help=f"learning rate (default: {default.learning_rate})")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                        help=f"adam, or sgd with Nesterov momentum {SGD_MOMENTUM} (default: {default.optimizer})")
    parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                        help="batch normalisation after each conv and dense layer while training; the saved model"
                             f" has it folded into those layers (default: {default.batch_norm})")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default=None,
                        help="bfloat16 = mixed precision: bfloat16 compute (about twice as fast on CPUs with"
                             " AVX-512 BF16 and on recent GPUs), float32 weights; the saved model is float32"
                             f" (default: {default.precision})")
    parser.add_argument("--schedule", choices=("cosine", "plateau", "constant"), default=None,
                        help=f"learning-rate schedule (default: {default.schedule})")
    parser.add_argument("--augment", choices=tuple(AUGMENTATIONS), default=None,
                        help=f"on-the-fly augmentation strength (default: {default.augment})")
    parser.add_argument("--label-smoothing", type=float, default=None,
                        help=f"label smoothing (default: {default.label_smoothing})")
    parser.add_argument("--class-weight", action=argparse.BooleanOptionalAction, default=None,
                        help=f"weight classes by inverse frequency (default: {default.class_weight})")
    parser.add_argument("--val-split", type=float, default=None,
                        help="stratified fraction of training held out for validation; 0 trains on all of it and keeps"
                             f" the last epoch (default: {default.val_split})")
    parser.add_argument("--patience", type=int, default=None,
                        help="early-stopping patience in epochs on validation accuracy, 0 = off"
                             f" (default: {default.patience})")
    parser.add_argument("--tta", choices=tuple(TTA_VIEWS), default=None,
                        help="test-time views averaged in evaluation: none, flip (image and mirror) or shifts"
                             f" (5 shifts of {TTA_SHIFT} pixels and their mirrors); may change on --resume"
                             f" (default: {default.tta})")
    parser.add_argument("--no-tta", dest="tta", action="store_const", const="none", help="same as --tta none")
    parser.add_argument("--padding", choices=("valid", "same"), default=None,
                        help=f"convolution padding (default: {default.padding})")
    parser.add_argument("--scaling", choices=tuple(INPUT_SCALINGS), default=None,
                        help=f"how the model normalises its 0-255 input: unit = 0..1, center = -1..1,"
                             f" standardize = each image to mean 0, standard deviation 1,"
                             f" equalize = each image histogram-equalised, then the same"
                             f" (default: {default.scaling})")
    parser.add_argument("--init", choices=tuple(INITIALIZERS), default=None,
                        help=f"weight initialiser (default: {default.init})")
    parser.add_argument("--ema", type=float, default=None, metavar="MOMENTUM",
                        help="momentum of the exponential average of the weights that is validated and saved,"
                             f" 0 = off (default: {default.ema})")
    parser.add_argument("--weight-decay", type=float, default=None, metavar="F",
                        help="decoupled weight decay: each step shrinks the weights by lr x this,"
                             f" 0 = off (default: {default.weight_decay})")
    parser.add_argument("--erase", type=float, default=None, metavar="P",
                        help="random erasing: the chance that a training image gets one rectangle"
                             f" ({ERASE_AREA[0] * 100:.0f}-{ERASE_AREA[1] * 100:.0f}%% of it) blanked to its mean grey,"
                             f" 0 = off (default: {default.erase})")
    parser.add_argument("--warmup", type=int, default=None, metavar="EPOCHS",
                        help="raise the learning rate step by step from 0 to its schedule over the first EPOCHS"
                             f" epochs, 0 = off (default: {default.warmup})")
    parser.add_argument("--self-distill", type=float, default=None, metavar="W",
                        help="progressive self-distillation: each training target mixes the label with the"
                             " model's own prediction for that image in the previous epoch, weighted from 0 in"
                             f" the first epoch up to W in the last, 0 = off (default: {default.self_distill})")
    parser.add_argument("--mixup", type=float, default=None, metavar="ALPHA",
                        help="mixup: each training image is blended with another, labels alike, by a share drawn"
                             f" from Beta(ALPHA, ALPHA), such as 0.2; 0 = off (default: {default.mixup})")
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default=None,
                        help="tf.distribute strategy: one device, all local GPUs, or several machines via"
                             f" TF_CONFIG (default: {default.strategy})")
    parser.add_argument("--seed", type=int, default=None, help=f"random seed (default: {default.seed})")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training images (quick experiments)")
    parser.add_argument("--cpu", action="store_true", help="hide GPUs and train on the CPU")
    return parser.parse_args(argv)


OPTION_FOR_FIELD = {"learning_rate": "lr"}


def recipe_from_args(args):
    recipe = Recipe.original() if args.original else Recipe()
    for field in fields(Recipe):
        value = getattr(args, OPTION_FOR_FIELD.get(field.name, field.name), None)
        if value is not None:
            setattr(recipe, field.name, value)
    return recipe


def run_training(args):
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # must be set before TensorFlow initialises
    from emotion_analyzer.device import start_tensorflow
    from emotion_analyzer.training import train

    start_tensorflow()
    try:
        train(args.data, args.model, recipe_from_args(args), runs_dir=args.runs, run_dir=args.run_dir,
              resume=args.resume, epochs_override=args.epochs if args.resume else None,
              tta_override=args.tta if args.resume else None, limit=args.limit)
    except KeyboardInterrupt:
        print("interrupted: every finished epoch is checkpointed; continue with `python training.py --resume`",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def main(argv=None) -> int:
    return run_cli(run_training, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
