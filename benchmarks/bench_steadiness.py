"""Benchmark how steady the shown label is on real faces: clips made from the London pairs (each person
neutral for a few seconds, a quick blend to their smile, then smiling), with small camera motion, sensor
noise and lighting drift, at 30 frames/s, read by the analyzer's live path.

Prints, for smoothing off, the old 5-frame mean and today's smoother (seconds-based average with
hysteresis), each applied to the same per-frame readings: label switches per second while the
expression holds, how long the label takes to follow the change (in the clips where the model reads the
smile at all), and the frames with a face.

    tar -xzf ../shared/datasets/london-faces.tar.gz -C /tmp
    python benchmarks/bench_steadiness.py /tmp/london-faces --people 30
"""

import argparse
import csv
import os
import sys
import tempfile
from collections import defaultdict, deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from emotion_analyzer import config  # noqa: E402
from emotion_analyzer.analysis.analyzer import AnalyzerSettings, RunOutputs  # noqa: E402
from emotion_analyzer.analysis.capture import Reader  # noqa: E402
from emotion_analyzer.analysis.smoothing import LabelSmoother, Smoothing  # noqa: E402

FPS = 30.0
NEUTRAL_SECONDS, BLEND_SECONDS, SMILE_SECONDS, GAP_FRAMES = 3.0, 0.3, 3.0, 10
SETTLE_SECONDS = 0.5   # switches are counted while the expression holds, from this long after it starts
CANVAS, FACE = (480, 360), 300


class PairClips(Reader):
    """Frames of every person's clip in turn, made on the fly, as a video reader the analyzer takes."""

    def __init__(self, pairs, seed=0):
        self.pairs, self.rng = pairs, np.random.default_rng(seed)
        self.frames = [(person, i) for person in range(len(pairs)) for i in range(self.clip_frames + GAP_FRAMES)]
        super().__init__()
        self.fps, self.frame_count = FPS, len(self.frames)
        self.images = {}

    @property
    def clip_frames(self):
        return int((NEUTRAL_SECONDS + BLEND_SECONDS + SMILE_SECONDS) * FPS)

    def photo(self, path):
        if path not in self.images:
            self.images[path] = cv2.resize(cv2.imread(str(path)), (FACE, FACE), interpolation=cv2.INTER_AREA)
        return self.images[path].astype(np.float32)

    def read(self):
        if self.position >= len(self.frames):
            return None
        person, i = self.frames[self.position]
        index, self.position = self.position, self.position + 1
        canvas = np.full((CANVAS[1], CANVAS[0], 3), 90, np.float32)
        if i < self.clip_frames:
            t = i / FPS
            share = np.clip((t - NEUTRAL_SECONDS) / BLEND_SECONDS, 0, 1)
            neutral, happy = self.pairs[person][1:]
            face = (1 - share) * self.photo(neutral) + share * self.photo(happy)
            dx, dy = 6 * np.sin(2 * np.pi * t / 3), 4 * np.cos(2 * np.pi * t / 4)  # a hand-held camera
            x, y = int(round((CANVAS[0] - FACE) / 2 + dx)), int(round((CANVAS[1] - FACE) / 2 + dy))
            canvas[y:y + FACE, x:x + FACE] = face
            canvas *= 1 + 0.08 * np.sin(2 * np.pi * t / 5)  # lighting drift
        canvas += self.rng.normal(0, 3, canvas.shape)  # sensor noise
        return index, np.clip(canvas, 0, 255).astype(np.uint8), self.pairs[person][0]


def london_pairs(folder, people):
    neutral = {p.name.split("_")[0]: p for p in (folder / "neutral").glob("*.jpg")}
    happy = {p.name.split("_")[0]: p for p in (folder / "happy").glob("*.jpg")}
    return [(person, neutral[person], happy[person]) for person in sorted(neutral.keys() & happy.keys())][:people]


def raw_readings(pairs, model):
    """{person: [(time in the clip, probabilities) per frame with a face]} from the analyzer, unsmoothed."""
    from emotion_analyzer.analysis.analyzer import Analyzer

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "raw.csv"
        analyzer = Analyzer(AnalyzerSettings(model=model, smoothing=None), log=lambda *_: None)
        analyzer.run("london-clips", RunOutputs(csv=out, display=False, progress=False),
                     opened=("video", PairClips(pairs)))
        readings = defaultdict(list)
        clip_frames = PairClips(pairs).clip_frames
        with open(out, newline="") as handle:
            reader = csv.DictReader(handle)
            labels = reader.fieldnames[8:-1]
            for row in reader:
                in_clip = int(row["frame"]) % (clip_frames + GAP_FRAMES)
                if in_clip < clip_frames:  # not a face kept on screen into the gap between clips
                    readings[row["source"]].append((in_clip / FPS, np.array([float(row[label]) for label in labels])))
    return readings, labels


def mean_of_last(frames):
    history = deque(maxlen=frames)

    def smooth(probabilities, _time):
        history.append(probabilities)
        mean = np.mean(history, axis=0)
        return mean, int(np.argmax(mean))
    return smooth


SMOOTHERS = {
    "off": lambda: LabelSmoother(None).update,
    "5-frame mean (before)": lambda: mean_of_last(5),
    "today's smoother": lambda: LabelSmoother(Smoothing()).update,
}


def evaluate(readings, labels, make_smoother):
    happy = labels.index("happy")
    change = NEUTRAL_SECONDS
    switches, hold_seconds, delays, face_frames = 0, 0.0, [], 0
    for frames in readings.values():
        smooth = make_smoother()
        shown = [(t, smooth(p, t)[1]) for t, p in frames]
        face_frames += len({t for t, _ in frames})
        for start, end in ((SETTLE_SECONDS, change), (change + BLEND_SECONDS + SETTLE_SECONDS,
                                                      change + BLEND_SECONDS + SMILE_SECONDS)):
            held = [label for t, label in shown if start <= t < end]
            switches += sum(a != b for a, b in zip(held, held[1:]))
            hold_seconds += end - start
        raw_last_second = [int(np.argmax(p)) for t, p in frames if t >= change + BLEND_SECONDS + SMILE_SECONDS - 1]
        read_smile = raw_last_second and raw_last_second.count(happy) > len(raw_last_second) / 2
        before_change = [label for t, label in shown if t < change]
        if read_smile and before_change and before_change[-1] != happy:
            follow = next((t for t, label in shown if t >= change and label == happy), None)
            if follow is not None:
                delays.append(follow - change)
    return switches / max(hold_seconds, 1e-9), delays, face_frames


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the extracted london-faces folder (neutral/ and happy/)")
    parser.add_argument("--people", type=int, default=30, help="clips to make, one per person (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    pairs = london_pairs(args.folder, args.people)
    if not pairs:
        parser.error(f"{args.folder}: expected neutral/NNN_03.jpg and happy/NNN_08.jpg (the London set)")

    from emotion_analyzer.common.device import start_tensorflow

    start_tensorflow()
    readings, labels = raw_readings(pairs, args.model)
    frames = len(pairs) * int((NEUTRAL_SECONDS + BLEND_SECONDS + SMILE_SECONDS) * FPS)
    print(f"{len(pairs)} clips of {NEUTRAL_SECONDS:g} s neutral, a {BLEND_SECONDS:g} s blend and {SMILE_SECONDS:g} s"
          f" smiling at {FPS:g} frames/s; today's smoother: {Smoothing()}")
    for name, make in SMOOTHERS.items():
        rate, delays, face_frames = evaluate(readings, labels, make)
        follow = (f"median {np.median(delays):.2f} s, 90th percentile {np.percentile(delays, 90):.2f} s over"
                  f" {len(delays)} clips where the smile is read" if delays else "never")
        print(f"{name:<22} {rate:5.2f} switches/s while the expression holds; follows the smile: {follow};"
              f" frames with a face {face_frames}/{frames}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
