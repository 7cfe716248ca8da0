"""Sort a raw facial-expression dataset into one folder per emotion: data/train/<emotion>/, data/test/<emotion>/.

Reads per-emotion folders (keeping a Training/Testing split), an images folder with an index CSV
(`image`, `emotion` columns), or FER2013's fer2013.csv. Copies, never moves; prints counts per split
and emotion, and saves a class-distribution chart.

examples:
  python clean_data.py --source "raw data/fer2013-6class" --votes data/ferplus-votes.csv  # with the FER+ crowd's votes
  python clean_data.py --source fer2013.csv --exclude disgust    # FER2013's CSV without 'disgust'
  python clean_data.py --source photos/ --map stressed=fear --out /tmp/photos --force
"""

import sys
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.common.cli import Parser, number_type, run_cli
from emotion_analyzer.errors import UserError
from emotion_analyzer.common.fileio import check_output_folder, check_output_path

CHART_NAME = "class_distribution.png"
open_fraction = number_type(float, lambda v: 0 < v < 1, "a fraction between 0 and 1, such as 0.2")


def chart_path(out):
    """The project's chart describes the project's data; another dataset's chart goes beside it."""
    same = Path(out).resolve() == config.DEFAULT_DATA_DIR.resolve()
    return config.RES_DIR / CHART_NAME if same else Path(out) / CHART_NAME


def parse_args(argv):
    parser = Parser(description=__doc__)
    parser.add_argument("--source", type=Path, default=config.DEFAULT_RAW_DIR,
                        help="raw dataset: a folder or a CSV file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=config.DEFAULT_DATA_DIR,
                        help="where train/ and test/ are written (default: %(default)s)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="EMOTION",
                        help="emotions to drop, e.g. --exclude disgust contempt (default: keep all)")
    parser.add_argument("--map", action="append", default=[], metavar="LABEL=EMOTION",
                        help="treat a dataset's own label as an emotion, e.g. --map stressed=fear (repeatable)")
    parser.add_argument("--test-size", type=open_fraction, default=config.DEFAULT_TEST_SIZE,
                        help="fraction of each emotion held out for testing when the source has no split"
                             " (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED,
                        help="random seed for that split (default: %(default)s)")
    parser.add_argument("--votes", type=Path, default=None, metavar="CSV",
                        help="the FER+ crowd's votes for the dataset, carried with it to training: a CSV keyed by"
                             " each image's path under --source (data/ferplus-votes.csv for the FER2013 JPEG copy),"
                             " or FER+'s fer2013new.csv for fer2013.csv (default: none)")
    parser.add_argument("--force", action="store_true",
                        help="replace train/ and test/ left in --out by an earlier run")
    parser.add_argument("--chart", type=Path, default=None,
                        help=f"class-distribution bar chart to save (default: {config.RES_DIR / CHART_NAME} for the"
                             f" default --out, else {CHART_NAME} in --out)")
    return parser.parse_args(argv)


def clean(args):
    from emotion_analyzer.data.collect import clean_dataset
    from emotion_analyzer.common.cli import format_skipped
    from emotion_analyzer.data.sorted_folders import format_counts_table
    from emotion_analyzer.data.labels import parse_exclusions, parse_mapping
    from emotion_analyzer.common.plots import plot_class_distribution

    mapping = parse_mapping(args.map)
    excluded = parse_exclusions(args.exclude, mapping)
    chart = args.chart or chart_path(args.out)
    if Path(args.source).resolve() in Path(chart).resolve().parents:
        raise UserError(f"--chart {chart} lies inside --source {args.source}: the raw data is never written to;"
                        " choose another path")
    check_output_path(chart, "--chart")
    check_output_folder(args.out, "--out")
    if args.votes is not None and not args.votes.is_file():
        raise UserError(f"--votes {args.votes}: no such file; give the votes CSV of this dataset")
    result = clean_dataset(args.source, args.out, mapping, excluded, args.test_size, args.seed, args.force, args.votes)
    print(f"layout: {result.layout}; " + (f"made a stratified {args.test_size:.0%} test split (seed {args.seed})"
                                          if result.made_split else "kept the source's train/test split"))
    if result.from_validation and result.validation_split == config.TRAIN_SPLIT:
        print(f"added the source's {result.from_validation:,} validation image(s) to train, beside its test folder:"
              " training.py holds out its own validation split from train")
    elif result.from_validation:
        print(f"the source has no test folder: its {result.from_validation:,} validation image(s) are the test split")
    print(format_counts_table(result.counts, result.categories))
    if result.votes:
        print(f"the crowd's votes ({args.votes}): {result.votes[0]:,} image(s) have them, {result.votes[1]:,} do not"
              " and keep their label only")
    for line in format_skipped(result.skipped):
        print(line, file=sys.stderr)
    print(f"skipped {len(result.skipped):,} file(s) or row(s) in all")
    plot_class_distribution(result.counts, result.categories, chart)
    print(f"wrote {args.out}/train, {args.out}/test and {args.out / config.CATEGORIES_FILE}; chart: {chart}")
    return 0


def main(argv=None) -> int:
    return run_cli(clean, parse_args(argv))

