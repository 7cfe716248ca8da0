"""Benchmark how well face boxes stay on moving faces between detections, holding them (as before) or
following the motion with optical flow, in one run.

Clips of three real heads (scikit-image's astronaut, as in the test videos) moving in straight lines at
a set speed, bouncing off the frame's edges, with sensor noise, at 30 frames/s, are read by the
analyzer's live path (the cascade every --detect-every frames on its worker thread). Each box the
analyzer keeps is compared with where the cascade finds that face in the very same frame: the mean
overlap (IoU) and the share of faces whose box has slipped to under 0.7 IoU, per speed, and the time
per frame. (Speed: benchmarks/bench_analyzer.py, with and without --no-follow.)

    python benchmarks/bench_tracking.py
    python benchmarks/bench_tracking.py --speeds 4 8 16 --detect-every 5
"""

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demo_media: real faces for generated videos
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from emotion_analyzer import config  # noqa: E402
from emotion_analyzer.analysis.analyzer import AnalyzerSettings, RunOutputs  # noqa: E402
from emotion_analyzer.analysis.track import iou  # noqa: E402

SLIPPED = 0.7


def measure(settings, speed, frames):
    """Mean IoU with the face found in the same frame, share of faces slipped under SLIPPED, faces per frame."""
    from demo_media import MovingHeads

    from emotion_analyzer.analysis.analyzer import Analyzer
    from emotion_analyzer.analysis.detect import FaceDetector
    from emotion_analyzer.core.images import to_gray_uint8
    from emotion_analyzer.analysis.outputs import RowTable

    clip = MovingHeads(speed, frames)
    analyzer = Analyzer(settings, log=lambda *_: None)
    rows = RowTable(analyzer.labels)
    analyzer.run("moving heads", RunOutputs(table=rows, display=False, progress=False), opened=("video", clip))
    table = rows.to_dataframe()
    detector = FaceDetector(settings.haar)
    found_now = [detector.detect(to_gray_uint8(image)) for image in clip.frames]
    overlaps = [max((iou(tuple(row[["x", "y", "w", "h"]]), tuple(box)) for box in found_now[row["frame"]]),
                    default=0.0) for _, row in table.iterrows()]
    return float(np.mean(overlaps)), float(np.mean(np.array(overlaps) < SLIPPED)), len(table) / (3 * frames)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH, help="(default: %(default)s)")
    parser.add_argument("--speeds", type=float, nargs="+", default=[2, 5, 10, 15],
                        help="head speeds in pixels a frame at 640x480, 30 frames/s (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip (default: %(default)s)")
    parser.add_argument("--detect-every", type=int, default=AnalyzerSettings.detect_every,
                        help="(default: %(default)s)")
    args = parser.parse_args(argv)

    from emotion_analyzer.common.device import start_tensorflow

    start_tensorflow()
    base = AnalyzerSettings(model=args.model, detect_every=args.detect_every)
    settings = {"hold (before)": replace(base, follow=False), "follow (today)": replace(base, follow=True)}
    print(f"{args.frames} frames of 3 heads per speed, --detect-every {args.detect_every}; IoU of the"
          f" analyzer's box with the face the cascade finds in the same frame; slipped: IoU under {SLIPPED}")
    print(f"{'px/frame':>8} {'boxes':>15} {'mean IoU':>9} {'slipped':>8} {'faces/frame':>11}")
    for speed in args.speeds:
        for name, reading in settings.items():
            mean_iou, slipped, found = measure(reading, speed, args.frames)
            print(f"{speed:8g} {name:>15} {mean_iou:9.3f} {slipped:8.1%} {found:11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
