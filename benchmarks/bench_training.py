"""Benchmark training throughput: the default recipe's tf.data pipeline (augmentation on the fly,
overlapped with compute) against a plain model.fit on the pickled arrays as the original did.

Both train the same architecture for the same number of steps on the real pickles in data/ (or
generated images when there are none), in one run, and print images/s, seconds per epoch and the ratio.

    python benchmarks/bench_training.py --steps 30 --rounds 3
    python benchmarks/bench_training.py --batch-size 64 --scaling equalize   # a variant of the default recipe
    python benchmarks/bench_training.py --self-distill 0.8
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
from emotion_analyzer.model import INPUT_SCALINGS  # noqa: E402
from emotion_analyzer.errors import UserError  # noqa: E402
from emotion_analyzer.training import Recipe, compile_model, make_dataset, validate_recipe  # noqa: E402


def load_arrays(data_dir, count):
    from emotion_analyzer.prep import load_prepared

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
    parser.add_argument("--self-distill", type=float, default=Recipe.self_distill, metavar="W",
                        help="self-distillation weight of the recipe measured (default: %(default)s)")
    parser.add_argument("--mixup", type=float, default=Recipe.mixup, metavar="ALPHA",
                        help="mixup alpha of the recipe measured (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.batch_size < 1:
        parser.error("--steps, --rounds and --batch-size must be positive")
    recipe = Recipe(batch_size=args.batch_size, scaling=args.scaling, self_distill=args.self_distill,
                    mixup=args.mixup)
    try:
        validate_recipe(recipe)  # the same limits as training.py, in one place
    except UserError as exc:
        parser.error(str(exc))

    import keras

    from emotion_analyzer.model import build_model

    original = Recipe.original()
    count = max(recipe.batch_size, original.batch_size) * args.steps
    x, y, where = load_arrays(args.data, count)
    train_images = int(28_273 * (1 - recipe.val_split))
    print(f"data: {where}; {args.steps} steps per variant in each of {args.rounds} rounds (median);"
          f" {os.cpu_count()} CPU cores")

    keras.utils.set_random_seed(0)
    plain = build_model((48, 48, 1), 6)
    compile_model(plain, original, len(x))

    def fit_plain(warmup):
        n = original.batch_size * (3 if warmup else args.steps)
        plain.fit(x[:n], y[:n], batch_size=original.batch_size, epochs=1, verbose=0)

    def recipe_fit(measured, augment=True):
        """A fit function for `measured` (a Recipe) on its own freshly built model."""
        model = build_model((48, 48, 1), 6, measured.padding, measured.scaling, measured.init)
        compile_model(model, measured, len(x))
        fed = measured if augment else replace(measured, augment="none")

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
    name = "default recipe" if is_default else (f"recipe ({recipe.scaling} inputs, self-distillation"
                                                f" {recipe.self_distill:g}, mixup {recipe.mixup:g})")
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
