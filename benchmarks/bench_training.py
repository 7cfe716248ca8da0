"""Benchmark training throughput: the default recipe's tf.data pipeline (augmentation on the fly,
overlapped with compute) against a plain model.fit on the pickled arrays as the original did.

Both train the same architecture for the same number of steps on the real pickles in data/ (or
generated images when there are none), in one run, and print images/s, seconds per epoch and the ratio.

    python benchmarks/bench_training.py --steps 30 --rounds 3
    python benchmarks/bench_training.py --precision float32      # float32 beside the default (auto), same rounds
    python benchmarks/bench_training.py --optimizer sgd --batch-norm --augment mild --erase 0.25
"""

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from emotion_analyzer import config  # noqa: E402
from emotion_analyzer.errors import UserError  # noqa: E402
from emotion_analyzer.core.model import INPUT_SCALINGS  # noqa: E402
from emotion_analyzer.training.inputs import make_dataset  # noqa: E402
from emotion_analyzer.training.recipe import AUGMENTATIONS, OPTIMIZERS, PRECISIONS, Recipe  # noqa: E402


def load_arrays(data_dir, count):
    from emotion_analyzer.data.prepared import load_prepared

    try:
        x, y, *_ = load_prepared(data_dir)
        return x[:count], y[:count], f"{data_dir} pickles"
    except UserError as exc:  # no pickles yet: generated images measure the same compute
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (count, 48, 48, 1), dtype=np.uint8), rng.integers(0, 6, count),
                f"generated images ({exc})")


def images_per_second(fit, images):
    started = time.perf_counter()
    fit(warmup=False)
    return images / (time.perf_counter() - started)


def interleaved_rates(variants, rounds):
    """Median images/s of each (fit, images) variant, timed in turn round after round, so a slow
    spell of a shared machine hits every variant alike instead of whichever ran during it."""
    for fit, _ in variants:
        fit(warmup=True)
    rates = [[] for _ in variants]
    for _ in range(rounds):
        for rate, (fit, images) in zip(rates, variants):
            rate.append(images_per_second(fit, images))
    return [float(np.median(r)) for r in rates]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=config.DEFAULT_DATA_DIR, help="pickles (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30,
                        help="timed steps per variant and round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=Recipe.batch_size,
                        help="batch size of the recipe measured (default: the default recipe's, %(default)s)")
    parser.add_argument("--scaling", choices=tuple(INPUT_SCALINGS), default=Recipe.scaling,
                        help="input normalisation of the recipe measured (default: %(default)s)")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default=Recipe.precision,
                        help="compute precision of the recipe measured (default: %(default)s)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=Recipe.optimizer,
                        help="optimizer of the recipe measured (default: %(default)s)")
    parser.add_argument("--batch-norm", action="store_true", help="measure the recipe with batch normalisation")
    parser.add_argument("--augment", choices=tuple(AUGMENTATIONS), default=Recipe.augment,
                        help="augmentation of the recipe measured (default: %(default)s)")
    parser.add_argument("--erase", type=float, default=Recipe.erase,
                        help="random-erasing chance of the recipe measured (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.batch_size < 1:
        parser.error("--steps, --rounds and --batch-size must be positive")
    recipe = Recipe(batch_size=args.batch_size, scaling=args.scaling, precision=args.precision,
                    optimizer=args.optimizer, batch_norm=args.batch_norm, augment=args.augment, erase=args.erase)
    try:
        recipe.check()  # the same limits as training.py, in one place
    except UserError as exc:
        parser.error(str(exc))

    import keras

    from emotion_analyzer.common.device import choose_precision
    from emotion_analyzer.core.model import build_model
    from emotion_analyzer.training.trainer import build_for_training, compile_model

    original = Recipe.original()
    count = max(recipe.batch_size, original.batch_size) * args.steps
    x, y, where = load_arrays(args.data, count)
    train_images = int(28_273 * (1 - recipe.val_split))
    print(f"data: {where}; {args.steps} steps per variant in each of {args.rounds} rounds (median);"
          f" {os.cpu_count()} CPU cores")
    for label, measured in (("measured recipe", recipe), ("default recipe", Recipe())):
        print(f"{label}: precision {measured.precision} -> %s (%s)" % choose_precision(measured.precision))

    keras.utils.set_random_seed(0)
    plain = build_model((48, 48, 1), 6)
    compile_model(plain, original)

    def fit_plain(warmup):
        n = original.batch_size * (3 if warmup else args.steps)
        plain.fit(x[:n], y[:n], batch_size=original.batch_size, epochs=1, verbose=0)

    def recipe_fit(measured, augment=True):
        """A fit function for `measured` (a Recipe) on its own freshly built model."""
        model = build_for_training(measured, 6, choose_precision(measured.precision)[0])
        fed = measured if augment else replace(measured, augment="none", erase=0.0)

        def fit(warmup):
            n = measured.batch_size * (3 if warmup else args.steps)
            model.fit(make_dataset(x[:n], y[:n], fed, 6, training=True), epochs=1, verbose=0)
        return fit

    steps_images = recipe.batch_size * args.steps
    variants = [(fit_plain, original.batch_size * args.steps), (recipe_fit(recipe), steps_images),
                (recipe_fit(recipe, augment=False), steps_images)]
    is_default = recipe == Recipe()
    if not is_default:  # the variant's cost is only meaningful beside the default timed in the same rounds
        variants.append((recipe_fit(Recipe()), Recipe().batch_size * args.steps))
    plain_rate, ours_rate, bare_rate, *default_rate = interleaved_rates(variants, args.rounds)
    print(f"original: model.fit on arrays, batch {original.batch_size}: {plain_rate:.0f} images/s,"
          f" {train_images / plain_rate:.0f} s/epoch")
    changed = {k: v for k, v in vars(recipe).items() if v != getattr(Recipe(), k)}
    name = "default recipe" if is_default else "recipe (" + ", ".join(f"{k} {v}" for k, v in changed.items()) + ")"
    print(f"{name}: tf.data + augmentation, batch {recipe.batch_size}: {ours_rate:.0f} images/s,"
          f" {train_images / ours_rate:.0f} s/epoch")
    print(f"same pipeline without augmentation: {bare_rate:.0f} images/s"
          f" (augmentation costs {round(100 * (1 - ours_rate / bare_rate)):d}% of throughput)")
    if default_rate:
        print(f"default recipe, timed in the same rounds: {default_rate[0]:.0f} images/s;"
              f" {name} trains at {ours_rate / default_rate[0]:.2f}x its images/s")
    print(f"ratio: {name} trains at {ours_rate / plain_rate:.2f}x the original's images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
