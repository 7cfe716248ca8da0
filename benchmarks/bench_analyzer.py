"""Benchmark the analyzer against a re-creation of the original loop, on the same video, in one run.

The original loop reads a frame, runs the Haar cascade on the full frame, and calls model.predict
once per face. Ours reads on a capture thread, detects on a downscaled frame every few frames while
following faces, and classifies all faces in one compiled call. Both draw their results.

    python benchmarks/bench_analyzer.py                      # 640x480, 3 faces, fps ratio
    python benchmarks/bench_analyzer.py --memory-frames 10000  # plus peak RSS after 10,000 frames

Needs requirements-dev.txt (scikit-image provides the face photo). Uses res/emotion_model.keras,
or an untrained model of the same architecture with --fresh-model (same cost per call).
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demo_media: videos of real faces, a test fixture
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from emotion_analyzer import config  # noqa: E402
from emotion_analyzer.analysis.analyzer import Analyzer, AnalyzerSettings, RunOutputs  # noqa: E402
from emotion_analyzer.analysis.stats import peak_rss_mb  # noqa: E402
from emotion_analyzer.analysis.capture import VideoStream  # noqa: E402
from emotion_analyzer.analysis.classify import ENGINES
from emotion_analyzer.core.views import TTA_VIEWS  # noqa: E402
from demo_media import write_face_video  # noqa: E402  (tests/demo_media.py)
from emotion_analyzer.analysis.detect import DETECTORS, DetectorSettings, load_cascade  # noqa: E402


class LoopingVideo(VideoStream):
    """A video file replayed from the start until `total` frames were read (long memory runs)."""

    def __init__(self, path, total):
        super().__init__("video", str(path))
        self.total = total
        self.frame_count = total

    def read(self):
        if self.position >= self.total:
            return None
        ok, image = self.capture.read()
        if not ok:  # end of the file: rewind and go on
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.capture.read()
            if not ok:
                return None
        self.position += 1
        return self.position - 1, image, self.name


def current_rss_mb():
    """Resident memory now (Linux /proc); None where that is not available."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class RssSampler(threading.Thread):
    """Samples resident memory twice a second, to show whether it grows over a long run."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            self.samples.append(current_rss_mb())

    def report(self):
        samples = [s for s in self.samples if s is not None]
        if len(samples) < 10:
            return "too short to sample"
        early = samples[len(samples) // 10]
        return f"RSS 10% into the run {early:.0f} MB, at the end {samples[-1]:.0f} MB, highest {max(samples):.0f} MB"


def original_loop(video, model, labels, frames):
    """The original project's per-frame work: full-frame detection, model.predict per face, draw."""
    cascade = load_cascade()
    capture = cv2.VideoCapture(str(video))
    faces_seen, done = [], 0
    started = time.perf_counter()
    while done < frames:
        ok, frame = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        faces = cascade.detectMultiScale(gray, scaleFactor=1.3, minNeighbors=5)
        for x, y, w, h in faces:
            face = cv2.resize(gray[y:y + h, x:x + w], (48, 48)).reshape(1, 48, 48, 1)
            prediction = model.predict(face, verbose=0)
            cv2.rectangle(frame, (x, y), (x + w, y + h), (255, 0, 0), 2)
            cv2.putText(frame, labels[int(np.argmax(prediction))], (x, y - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                        (255, 0, 0), 2)
        faces_seen.append(len(faces))
        done += 1
    seconds = time.perf_counter() - started
    capture.release()
    return done / seconds, float(np.mean(faces_seen))


def ensure_model(args, folder):
    if not args.fresh_model:
        return args.model
    from emotion_analyzer.core.model import build_model, save_model_atomic, save_model_info

    path = Path(folder) / "fresh.keras"
    save_model_atomic(build_model((48, 48, 1), 6), path)
    save_model_info(path, {"labels": ["angry", "fear", "happy", "neutral", "sad", "surprise"]})
    return path


def run_ours(video, model_path, frames, args):
    detector = DetectorSettings(scale_factor=args.scale_factor, detect_width=args.detect_width)
    settings = AnalyzerSettings(model=model_path, detect_every=args.detect_every, follow=args.follow, tta=args.tta,
                                engine=args.engine, detector=args.detector, haar=detector)
    analyzer = Analyzer(settings, log=lambda *_: None)
    return analyzer.run(str(video), RunOutputs(display=False, progress=False, max_frames=frames),
                        opened=("video", LoopingVideo(video, frames)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH, help="model (default: %(default)s)")
    parser.add_argument("--fresh-model", action="store_true", help="use an untrained model of the same architecture")
    parser.add_argument("--frames", type=int, default=600, help="frames for our pipeline (default: %(default)s)")
    parser.add_argument("--baseline-frames", type=int, default=30,
                        help="frames for the original loop, which is slow (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measure both loops this many times, alternating; the ratio is the median"
                             " (default: %(default)s)")
    parser.add_argument("--faces", type=int, default=3, help="faces in the video (default: %(default)s)")
    parser.add_argument("--detect-every", type=int, default=AnalyzerSettings.detect_every,
                        help="our detection interval (default: %(default)s)")
    parser.add_argument("--detector", choices=DETECTORS, default=AnalyzerSettings.detector,
                        help="what finds our faces (default: %(default)s, Haar for videos)")
    parser.add_argument("--no-follow", dest="follow", action="store_false",
                        help="our pipeline holding boxes between detections instead of following the faces")
    parser.add_argument("--scale-factor", type=float, default=DetectorSettings.scale_factor,
                        help="our cascade scale step (default: %(default)s)")
    parser.add_argument("--detect-width", type=int, default=DetectorSettings.detect_width,
                        help="our detection width (default: %(default)s)")
    parser.add_argument("--tta", nargs="?", choices=tuple(TTA_VIEWS), const="flip", default=AnalyzerSettings.tta,
                        help="our pipeline with test-time views, flip or shifts; alone: flip (default: %(default)s)")
    parser.add_argument("--engine", choices=ENGINES, default=AnalyzerSettings.engine,
                        help=f"what runs our CNN: {', '.join(ENGINES)} (default: %(default)s)")
    parser.add_argument("--memory-frames", type=int, default=0,
                        help="also run this many frames and report peak RSS (e.g. 10000)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "faces.avi"
        write_face_video(video, frames=300, faces=args.faces)
        model_path = ensure_model(args, folder)
        from emotion_analyzer.core.model import load_trained_model

        model, info = load_trained_model(model_path)
        print(f"video: 640x480, {args.faces} faces, 300 frames looped; model {model_path.name};"
              f" {os.cpu_count()} CPU cores")

        ratios = []
        for round_number in range(1, args.rounds + 1):
            # Each round measures both, one after the other, so a drift in the machine's speed over
            # minutes moves both sides of a ratio alike.
            base_fps, base_faces = original_loop(video, model, info["labels"], args.baseline_frames)
            print(f"round {round_number}: original loop (model.predict per face): {base_fps:.2f} fps,"
                  f" {base_faces:.2f} faces/frame over {args.baseline_frames} frames")
            stats = run_ours(video, model_path, args.frames, args)
            print(f"round {round_number}: ours: {stats.fps:.1f} fps, {stats.faces_per_frame:.2f} faces/frame over"
                  f" {stats.frames} frames (detect every {args.detect_every}, scale factor {args.scale_factor},"
                  f" detect width {args.detect_width}, {'following' if args.follow else 'holding'} boxes,"
                  f" tta {args.tta}, engine {args.engine})")
            for line in stats.timing_lines()[1:]:
                print(f"  {line}")
            ratios.append(stats.fps / base_fps)
            print(f"round {round_number}: speed-up {ratios[-1]:.1f}x the original loop")
        print(f"speed-up: {np.median(ratios):.1f}x the original loop (median of {len(ratios)} rounds:"
              f" {', '.join(f'{r:.1f}x' for r in ratios)})")

        if args.memory_frames:
            before = peak_rss_mb()
            sampler = RssSampler()
            sampler.start()
            long_stats = run_ours(video, model_path, args.memory_frames, args)
            sampler.stop.set()
            print(f"memory: peak RSS {before:.0f} MB after {args.frames:,} frames,"
                  f" {long_stats.peak_rss_mb:.0f} MB after {long_stats.frames:,} more"
                  f" ({long_stats.fps:.1f} fps over the long run; it loads its own copy of the model)")
            print(f"  during the long run: {sampler.report()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
