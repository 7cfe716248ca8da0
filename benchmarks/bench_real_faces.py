"""Benchmark the analyzer on real photos: faces found, false faces, accuracy per emotion, a confusion
table and time per photo, for the still-image settings before the real-faces work and today's with each
detector (Haar; MTCNN, which as in the analyzer takes Haar's box for a face Haar finds too), side by side
in one run; then portraits turned by up to 50 degrees: faces found, and how many read as the upright
photo does. (MTCNN's own boxes alone: benchmarks/bench_framing.py --detector mtcnn.)

FOLDER holds one subfolder of photos per emotion (the layout clean_data.py reads), such as the London
set (`tar -xzf ../shared/datasets/london-faces.tar.gz`: neutral/ and happy/). Each configuration runs the
analyzer's own still-image path (Analyzer with a folder source) and its CSV is read back; a photo's
reading is its largest face (more than one face in a portrait is a false face).

    python benchmarks/bench_real_faces.py london-faces
    python benchmarks/bench_real_faces.py london-faces --margin 0.2 --offset 0.1   # try another framing
    python benchmarks/bench_real_faces.py london-faces --detectors mtcnn --turned 0 # MTCNN only, upright only
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

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotion_analyzer import config  # noqa: E402
from emotion_analyzer.analysis.analyzer import AnalyzerSettings, RunOutputs  # noqa: E402
from emotion_analyzer.analysis.detect import DetectorSettings, PHOTO_DETECTOR  # noqa: E402
from emotion_analyzer.core.framing import DEFAULT_FRAMING, Framing  # noqa: E402
from emotion_analyzer.core.images import list_image_files  # noqa: E402
from emotion_analyzer.data.labels import emotion_folders  # noqa: E402

# The still-image path before the real-faces work: the live detector's settings, the Haar box as the
# crop, one view.
BEFORE = {"detector": "haar", "photo_haar": DetectorSettings(), "framing": Framing(0.0, 0.0), "tta": "none"}
# How far the turned-faces run turns each portrait, in degrees (people tilt their heads and phones).
TURNS = (-50, -35, -20, 20, 35, 50)


def read_folder(settings, folder):
    """{photo name: [(box area, emotion), ...]} for every photo in `folder`, and seconds per photo."""
    from emotion_analyzer.analysis.analyzer import Analyzer

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "faces.csv"
        outputs = RunOutputs(csv=out, display=False, progress=False)
        stats = Analyzer(settings, log=lambda *_: None).run(str(folder), outputs)
        faces = {path.name: [] for path in list_image_files(folder)[0]}
        with open(out, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["face"]:  # a photo with no face (or unreadable) has a row without one
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
    before = results[0]
    for after in results[1:]:
        print(f"ratio: {after['name']} reads {after['correct']} of {after['photos']} photos right against"
              f" {before['correct']} before ({after['correct'] / max(before['correct'], 1):.2f}x), at"
              f" {after['seconds_per_photo'] / max(before['seconds_per_photo'], 1e-9):.1f}x the time per photo")


def turned_photos(folders, people, scratch):
    """Each of the first `people` people of every emotion folder turned by TURNS degrees on a reflected
    border, in scratch/<emotion>/; returns {turned name: upright name}."""
    upright_of = {}
    for emotion, folder in folders.items():
        out = Path(scratch) / emotion
        out.mkdir(parents=True, exist_ok=True)
        for path in list_image_files(folder)[0][:people]:
            image = cv2.imread(str(path))
            height, width = image.shape[:2]
            for degrees in TURNS:
                matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
                turned = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
                name = f"{path.stem}_turned{degrees:+d}.png"
                cv2.imwrite(str(out / name), turned)
                upright_of[name] = path.name
    return upright_of


def measure_turned(name, settings, folders, people):
    """Turned portraits: how many have a face, and how many read as their upright photo does."""
    with tempfile.TemporaryDirectory() as scratch:
        upright_of = turned_photos(folders, people, scratch)
        found = same = 0
        for emotion, folder in folders.items():
            upright = read_folder(settings, folder)[0]
            turned = read_folder(settings, Path(scratch) / emotion)[0]
            for turned_name, faces in turned.items():
                if not faces:
                    continue
                found += 1
                upright_faces = upright[upright_of[turned_name]]
                same += bool(upright_faces) and sorted(faces)[-1][1] == sorted(upright_faces)[-1][1]
    total = len(upright_of)
    print(f"turned ({', '.join(f'{d:+d}' for d in TURNS)} degrees), {name}: a face in {found} of {total},"
          f" read as the upright photo in {same} of {total} ({same / max(total, 1):.0%})", flush=True)


def asked_framing(args):
    """The Framing --margin and --offset ask for (the other from Haar's default), else None: the model's."""
    if args.margin is None and args.offset is None:
        return None
    return replace(DEFAULT_FRAMING, **{k: v for k, v in (("margin", args.margin), ("offset", args.offset)) if v is not None})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="one subfolder of photos per emotion")
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH, help="(default: %(default)s)")
    parser.add_argument("--detectors", nargs="+", choices=("haar", "mtcnn"), default=["haar", "mtcnn"],
                        help="today's detectors to measure beside the settings before (default: %(default)s)")
    parser.add_argument("--margin", type=float, default=None, help="framing margin to measure as today's")
    parser.add_argument("--offset", type=float, default=None, help="framing offset to measure as today's")
    parser.add_argument("--tta", default=AnalyzerSettings.tta,
                        help="test-time views to measure as today's (default: %(default)s)")
    parser.add_argument("--photo-scale-factor", type=float, default=PHOTO_DETECTOR.scale_factor)
    parser.add_argument("--photo-min-neighbors", type=int, default=PHOTO_DETECTOR.min_neighbors)
    parser.add_argument("--fallback-cascade", default=PHOTO_DETECTOR.fallback)
    parser.add_argument("--turned", type=int, default=4, metavar="PEOPLE",
                        help=f"also turn the first PEOPLE photos of each emotion by {TURNS} degrees and count"
                             " those read as upright, per detector; 0 = skip (default: %(default)s)")
    args = parser.parse_args(argv)
    folders = emotion_folders(args.folder)
    if not folders:
        parser.error(f"{args.folder}: expected one subfolder per emotion (neutral/, happy/, ...)")

    from emotion_analyzer.common.device import start_tensorflow
    from emotion_analyzer.core.model import load_model_info

    start_tensorflow()
    labels = load_model_info(args.model)["labels"]
    photo_haar = replace(PHOTO_DETECTOR, scale_factor=args.photo_scale_factor,
                         min_neighbors=args.photo_min_neighbors,
                         fallback=None if args.fallback_cascade.lower() == "none" else args.fallback_cascade)
    today = {kind: AnalyzerSettings(model=args.model, detector=kind, tta=args.tta, photo_haar=photo_haar,
                                    framing=asked_framing(args))
             for kind in args.detectors}
    started = time.perf_counter()
    results = [measure("before", AnalyzerSettings(model=args.model, **BEFORE), folders)]
    results += [measure(kind, settings, folders) for kind, settings in today.items()]
    print(f"{args.folder}: {sum(len(list_image_files(f)[0]) for f in folders.values())} photos in"
          f" {', '.join(folders)}; Haar for photos: {photo_haar}; framing"
          f" {asked_framing(args) or 'per detector, from the model JSON'},"
          f" views {args.tta}; {time.perf_counter() - started:.0f} s")
    report(results, labels)
    if args.turned:
        for kind, settings in today.items():
            measure_turned(kind, settings, folders, args.turned)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
