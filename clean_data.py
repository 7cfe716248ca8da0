"""Sort a raw facial-expression dataset into one folder per emotion: data/train/<emotion>/, data/test/<emotion>/.

Reads per-emotion folders (keeping a Training/Testing split), an images folder with an index CSV
(`image`, `emotion` columns), or FER2013's fer2013.csv. Copies, never moves; prints counts per split
and emotion, and saves a class-distribution chart.
"""

import argparse
import sys
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.cli import run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=config.DEFAULT_RAW_DIR,
                        help="raw dataset: a folder or a CSV file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=config.DEFAULT_DATA_DIR,
                        help="where train/ and test/ are written (default: %(default)s)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="EMOTION",
                        help="emotions to drop, e.g. --exclude disgust contempt (default: keep all)")
    parser.add_argument("--map", action="append", default=[], metavar="LABEL=EMOTION",
                        help="treat a dataset's own label as an emotion, e.g. --map stressed=fear (repeatable)")
    parser.add_argument("--test-size", type=float, default=config.DEFAULT_TEST_SIZE,
                        help="fraction of each emotion held out for testing when the source has no split"
                             " (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED,
                        help="random seed for that split (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="replace train/ and test/ left in --out by an earlier run")
    parser.add_argument("--chart", type=Path, default=config.RES_DIR / "class_distribution.png",
                        help="class-distribution bar chart to save (default: %(default)s)")
    return parser.parse_args(argv)


def clean(args):
    from emotion_analyzer.clean import clean_dataset, format_counts_table, format_skipped
    from emotion_analyzer.labels import parse_exclusions, parse_mapping
    from emotion_analyzer.plots import plot_class_distribution

    layout, categories, counts, skipped, made_split = clean_dataset(
        args.source, args.out, parse_mapping(args.map), parse_exclusions(args.exclude),
        args.test_size, args.seed, args.force)
    print(f"layout: {layout}; " + (f"made a stratified {args.test_size:.0%} test split (seed {args.seed})"
                                   if made_split else "kept the source's train/test split"))
    print(format_counts_table(counts, categories))
    for line in format_skipped(skipped):
        print(line, file=sys.stderr)
    print(f"skipped {len(skipped):,} file(s) or row(s) in all")
    plot_class_distribution(counts, categories, args.chart)
    print(f"wrote {args.out}/train, {args.out}/test and {args.out / config.CATEGORIES_FILE}; chart: {args.chart}")
    return 0


def main(argv=None) -> int:
    return run_cli(clean, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
