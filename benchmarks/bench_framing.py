"""Choose how a detector's face boxes are framed for the CNN: accuracy on real photos for a grid of
margins and offsets, people of even number choosing and people of odd number checking, in one run.

FOLDER holds one subfolder of photos per emotion whose names start with the person's number, such as
the London set (`neutral/NNN_03.jpg`, `happy/NNN_08.jpg`). Each photo's faces are found once with the
analyzer's photo detector (its largest face kept, turned upright by its eyes where the detector gives
them), then every framing crops, equalizes and classifies them with the analyzer's classifier.

    python benchmarks/bench_framing.py london-faces --detector mtcnn
    python benchmarks/bench_framing.py london-faces --detector haar --margins 0 0.1 0.2 --offsets -0.05 0
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotion_analyzer import config  # noqa: E402
from emotion_analyzer.core.framing import crop_faces, Framing  # noqa: E402
from emotion_analyzer.core.images import decode_image_bytes, list_image_files, to_gray_uint8  # noqa: E402
from emotion_analyzer.data.labels import emotion_folders  # noqa: E402


def largest_faces(analyzer, folders):
    """[(emotion, person number, gray photo, its largest face's box, its eyes or None)] of every photo with a face."""
    detector = analyzer.detector_for(photo=True)
    faces = []
    for emotion, folder in folders.items():
        for path in list_image_files(folder)[0]:
            image = decode_image_bytes(path, path.read_bytes())
            gray = to_gray_uint8(image)
            found = detector.find(image, gray)
            if not len(found.boxes):
                continue
            largest = int(np.argmax(found.boxes[:, 2] * found.boxes[:, 3]))
            eyes = None if found.eyes is None else found.eyes[largest]
            faces.append((emotion, int(path.name.split("_")[0]), gray, found.boxes[largest], eyes))
    return faces


def accuracy_by_half(analyzer, faces, framing):
    """Share of faces read right among people of even and of odd number."""
    crops = [crop_faces(gray, [box], framing, None if eyes is None else [eyes]).pixels
             for _, _, gray, box, eyes in faces]
    predicted = analyzer.classifier.classify(np.concatenate(crops)).argmax(axis=1)
    right = np.array([analyzer.labels[p] == emotion for p, (emotion, *_) in zip(predicted, faces)])
    even = np.array([person % 2 == 0 for _, person, *_ in faces])
    return right[even].mean(), right[~even].mean(), int(right.sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="one subfolder of photos per emotion")
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH, help="(default: %(default)s)")
    parser.add_argument("--detector", choices=("haar", "mtcnn"), default="mtcnn",
                        help="whose boxes to frame (default: %(default)s)")
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25],
                        help="shares of the box added on each side (default: %(default)s)")
    parser.add_argument("--offsets", type=float, nargs="+", default=[-0.1, -0.05, 0.0, 0.05, 0.1],
                        help="shares of the box's height the crop moves down (default: %(default)s)")
    args = parser.parse_args(argv)
    folders = emotion_folders(args.folder)
    if not folders:
        parser.error(f"{args.folder}: expected one subfolder per emotion (neutral/, happy/, ...)")

    from emotion_analyzer.analysis.analyzer import Analyzer, AnalyzerSettings
    from emotion_analyzer.common.device import start_tensorflow

    start_tensorflow()
    analyzer = Analyzer(AnalyzerSettings(model=args.model, detector=args.detector), log=lambda *_: None)
    if args.detector == "mtcnn":  # MTCNN's own boxes only: no Haar boxes to mix in
        analyzer.detector_for(photo=True).haar = None
    faces = largest_faces(analyzer, folders)
    print(f"{args.folder}: {len(faces)} photos with a face ({args.detector}); model {args.model};"
          f" views {analyzer.classifier.tta}; equalized crops")
    print(f"{'margin':>6} {'offset':>6} {'even':>6} {'odd':>6} {'right':>6}")
    scores = {}
    for margin in args.margins:
        for offset in args.offsets:
            even, odd, right = accuracy_by_half(analyzer, faces, Framing(margin, offset, equalize=True))
            scores[(margin, offset)] = (even, odd, right)
            print(f"{margin:6.2f} {offset:6.2f} {even:6.1%} {odd:6.1%} {right:6d}", flush=True)
    (margin, offset), (even, odd, right) = max(scores.items(), key=lambda item: item[1][0])
    print(f"chosen on the even half: margin {margin}, offset {offset}: even {even:.1%}, odd {odd:.1%},"
          f" {right} of {len(faces)} right")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
