"""Benchmark the analyzer on real photos: faces found, false faces, accuracy per emotion, a confusion
table and time per photo, for the still-image settings before the real-faces work and today's, side by
side in one run.

FOLDER holds one subfolder of photos per emotion (the layout clean_data.py reads), such as the London
set (`tar -xzf ../shared/datasets/london-faces.tar.gz`: neutral/ and happy/). Each configuration runs the
analyzer's own still-image path (Analyzer with a folder source) and its CSV is read back; a photo's
reading is its largest face (more than one face in a portrait is a false face).

    python benchmarks/bench_real_faces.py london-faces
    python benchmarks/bench_real_faces.py london-faces --margin 0.2 --offset 0.1   # try another framing
    python benchmarks/bench_real_faces.py london-faces --no-equalize               # crops as they are
"""

import argparse
import csv
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotion_analyzer import config  # noqa: E402
from emotion_analyzer.analyze import AnalyzerSettings, RunOutputs  # noqa: E402
from emotion_analyzer.detect import STILL_DETECTOR, DetectorSettings, cascade_from_flag  # noqa: E402
from emotion_analyzer.framing import Framing, framing_from_flags  # noqa: E402
from emotion_analyzer.images import list_image_files  # noqa: E402
from emotion_analyzer.labels import canonical_emotion  # noqa: E402

# The still-image path before this work: the live detector's settings, the Haar box as the crop, one view.
BEFORE = {"still_detector": DetectorSettings(), "framing": Framing(0.0, 0.0), "tta": "none"}


def read_folder(settings, folder):
    """{photo name: [(box area, emotion), ...]} for every photo in `folder`, and seconds per photo."""
    from emotion_analyzer.analyze import Analyzer

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "faces.csv"
        outputs = RunOutputs(csv=out, display=False, progress=False)
        stats = Analyzer(settings, log=lambda *_: None).run(str(folder), outputs)
        faces = {path.name: [] for path in list_image_files(folder)[0]}
        with open(out, newline="") as handle:
            for row in csv.DictReader(handle):
                faces[row["source"]].append((int(row["w"]) * int(row["h"]), row["emotion"]))
    return faces, stats.wall_seconds / max(stats.frames, 1)


def measure(name, settings, folders):
    """Counts for one configuration over every emotion folder."""
    result = {"name": name, "photos": 0, "found": 0, "false": 0, "correct": 0, "seconds": [],
              "per_emotion": {}, "confusion": Counter()}
    for emotion, folder in folders.items():
        faces, seconds = read_folder(settings, folder)
        found = [sorted(f)[-1][1] for f in faces.values() if f]
        correct = sum(predicted == emotion for predicted in found)
        result["per_emotion"][emotion] = (len(faces), len(found), correct)
        result["photos"] += len(faces)
        result["found"] += len(found)
        result["false"] += sum(len(f) > 1 for f in faces.values())
        result["correct"] += correct
        result["seconds"].append(seconds * len(faces))
        result["confusion"].update((emotion, predicted) for predicted in found)
    result["seconds_per_photo"] = sum(result["seconds"]) / max(result["photos"], 1)
    return result


def report(results, labels):
    print(f"{'settings':<8} {'photos':>6} {'face found':>11} {'>1 face':>8} {'correct of found':>17}"
          f" {'correct of all':>15} {'s/photo':>8}")
    for r in results:
        print(f"{r['name']:<8} {r['photos']:>6} {r['found']:>11} {r['false']:>8}"
              f" {r['correct']:>8} ({r['correct'] / max(r['found'], 1):5.1%})"
              f" {r['correct'] / max(r['photos'], 1):>14.1%} {r['seconds_per_photo']:>8.3f}")
    for r in results:
        per = ", ".join(f"{e}: {c}/{n} read right, {f} with a face" for e, (n, f, c) in r["per_emotion"].items())
        print(f"{r['name']}: {per}")
    for r in results:
        shown = [label for label in labels if any(label in pair for pair in r["confusion"])]
        print(f"confusion, {r['name']} (rows: the photo's emotion; columns: read as)")
        print(" " * 10 + "".join(f"{label:>9}" for label in shown))
        for true in r["per_emotion"]:
            print(f"{true:<10}" + "".join(f"{r['confusion'][(true, label)]:>9}" for label in shown))
    before, after = results
    print(f"ratio: today's settings read {after['correct']} of {after['photos']} photos right against"
          f" {before['correct']} before ({after['correct'] / max(before['correct'], 1):.2f}x), at"
          f" {after['seconds_per_photo'] / max(before['seconds_per_photo'], 1e-9):.1f}x the time per photo")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="one subfolder of photos per emotion")
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH, help="(default: %(default)s)")
    parser.add_argument("--margin", type=float, default=None, help="framing margin to measure as today's")
    parser.add_argument("--offset", type=float, default=None, help="framing offset to measure as today's")
    parser.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=None,
                        help="equalized crops or not, to measure as today's")
    parser.add_argument("--tta", default=AnalyzerSettings.tta, help="test-time views to measure as today's (default: %(default)s)")
    parser.add_argument("--still-scale-factor", type=float, default=STILL_DETECTOR.scale_factor)
    parser.add_argument("--still-min-neighbors", type=int, default=STILL_DETECTOR.min_neighbors)
    parser.add_argument("--fallback-cascade", default=STILL_DETECTOR.fallback)
    args = parser.parse_args(argv)
    folders = {canonical_emotion(p.name): p for p in sorted(args.folder.iterdir()) if p.is_dir()
               and canonical_emotion(p.name)}
    if not folders:
        parser.error(f"{args.folder}: expected one subfolder per emotion (neutral/, happy/, ...)")

    from emotion_analyzer.device import start_tensorflow
    from emotion_analyzer.model import load_model_info

    start_tensorflow()
    labels = load_model_info(args.model)["labels"]
    framing = framing_from_flags(args.margin, args.offset, args.equalize)
    fallback = cascade_from_flag(args.fallback_cascade)
    still_detector = replace(STILL_DETECTOR, scale_factor=args.still_scale_factor,
                             min_neighbors=args.still_min_neighbors, fallback=fallback)
    today = AnalyzerSettings(model=args.model, tta=args.tta, framing=framing, still_detector=still_detector)
    started = time.perf_counter()
    results = [measure("before", AnalyzerSettings(model=args.model, **BEFORE), folders),
               measure("today", today, folders)]
    print(f"{args.folder}: {sum(len(list_image_files(f)[0]) for f in folders.values())} photos in"
          f" {', '.join(folders)}; today's settings: {today.still_detector}, framing"
          f" {today.framing or 'from the model JSON'}, views {today.tta}; {time.perf_counter() - started:.0f} s")
    report(results, labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
