"""Turn data/train/ and data/test/ into 48x48 grayscale arrays and pickle them into data/.

Writes features.pickle, labels.pickle, test_features.pickle and test_labels.pickle (uint8 arrays of
shape (N, 48, 48, 1) and integer labels), shuffled with a fixed seed, plus test_leaks.pickle and
prepared.json: a manifest of the set (categories, each file's size and fingerprint) that training.py
checks, so a set mixed from two runs or cut short is refused instead of trained on. The files are
renamed into place together at the end: an interrupted run leaves the previous set. Reports blank
images, pixel-identical duplicates, conflicting labels and test images with a twin in training.
Photos are turned upright as their EXIF orientation says.

examples:
  python prep_data.py                    # data/train and data/test -> data/*.pickle
  python prep_data.py --dedupe           # without blanks, duplicates, conflicts and train/test leaks
  python prep_data.py --data /tmp/photos # another dataset sorted by clean_data.py --out /tmp/photos
"""

import sys
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.common.cli import Parser, run_cli


def parse_args(argv):
    parser = Parser(description=__doc__)
    parser.add_argument("--data", type=Path, default=config.DEFAULT_DATA_DIR,
                        help="folder holding train/ and test/ from clean_data.py; pickles go here too"
                             " (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED,
                        help="seed for the shuffle (default: %(default)s)")
    parser.add_argument("--dedupe", action="store_true",
                        help="drop blank images, extra copies of identical images, identical images with"
                             " conflicting labels, and test images with a twin in training")
    return parser.parse_args(argv)


def prep(args):
    from emotion_analyzer.common.cli import format_skipped
    from emotion_analyzer.data.arrays import format_quality, prepare

    result = prepare(args.data, args.seed, args.dedupe)
    train, test = result["train"], result["test"]
    for line in format_skipped(train.skipped + test.skipped):
        print(line, file=sys.stderr)
    print(f"skipped {len(train.skipped) + len(test.skipped):,} unusable file(s);"
          f" converted {train.converted + test.converted:,} colour or odd-sized image(s) to 48x48 grayscale")
    for line in format_quality(result["report"]):
        print(line)
    if train.votes is not None:
        from emotion_analyzer.data.prepared import describe_coverage

        for name, split in (("train", train), ("test", test)):
            print(f"{name}: {describe_coverage(split.votes, result['categories'])}")
    if args.dedupe:
        print(f"--dedupe dropped {result['dropped'][0]:,} train and {result['dropped'][1]:,} test images")
    print(f"categories: {', '.join(result['categories'])}")
    print(f"train {train.images.shape} {train.images.dtype}, test {test.images.shape} {test.images.dtype}"
          f" -> {args.data}")
    return 0


def main(argv=None) -> int:
    return run_cli(prep, parse_args(argv))

