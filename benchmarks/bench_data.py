"""Benchmark clean_data.py + prep_data.py on the whole real dataset against an original-style loop.

The baseline reads every image with cv2.imread one after another, resizes it, appends it to a list
and pickles the arrays, as the original prep_data.py did (it does none of our checks: truncation,
duplicates, leaks, atomic writes). Both runs start from the same extracted dataset.

    python benchmarks/bench_data.py     # extracts ../shared/datasets/fer2013-6class.tar.gz to a temp dir
"""

import argparse
import pickle
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import clean_data  # noqa: E402
import prep_data  # noqa: E402

DEFAULT_ARCHIVE = ROOT.parent / "shared" / "datasets" / "fer2013-6class.tar.gz"


def original_style(source, out):
    """Read, resize and pickle every image in a plain loop (the original's approach)."""
    categories = sorted(p.name for p in (source / "Training").iterdir())
    for split, prefix in (("Training", ""), ("Testing", "test_")):
        features, labels = [], []
        for label, emotion in enumerate(categories):
            for path in sorted((source / split / emotion).iterdir()):
                image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                features.append(cv2.resize(image, (48, 48)))
                labels.append(label)
        with open(out / f"{prefix}features.pickle", "wb") as handle:
            pickle.dump(np.array(features).reshape(-1, 48, 48, 1), handle)
        with open(out / f"{prefix}labels.pickle", "wb") as handle:
            pickle.dump(labels, handle)


def timed(work):
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE, help="dataset archive (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.archive.is_file():
        print(f"error: {args.archive} not found; pass --archive PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        with tarfile.open(args.archive) as archive:
            archive.extractall(folder / "raw", filter="data")
        source = next((folder / "raw").iterdir())
        (folder / "baseline").mkdir()
        baseline = timed(lambda: original_style(source, folder / "baseline"))
        out = folder / "data"
        quiet = ["--chart", str(folder / "chart.png")]
        clean = timed(lambda: clean_data.main(["--source", str(source), "--out", str(out), *quiet]))
        prep = timed(lambda: prep_data.main(["--data", str(out)]))
    images = 35_340
    print(f"\noriginal-style read+resize+pickle: {baseline:.1f} s ({images / baseline:,.0f} images/s)")
    print(f"clean_data.py {clean:.1f} s + prep_data.py {prep:.1f} s = {clean + prep:.1f} s"
          f" ({images / (clean + prep):,.0f} images/s; includes checks, duplicate and leak report, atomic writes)")
    print(f"ratio: ours takes {(clean + prep) / baseline:.2f}x the baseline's time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
