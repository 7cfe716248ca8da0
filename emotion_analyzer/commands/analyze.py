"""Read the emotion on every face, live: webcam, video file, image, folder of images or stream URL.

Finds faces with OpenCV's Haar cascade, classifies all faces of a frame in one call of the trained
CNN (TensorFlow Lite with int8 weights on the CPU, TensorFlow on a GPU), and draws a box, the top
emotion, its confidence and a probability bar chart per face. Keys in the window: q/Esc quit, p pause,
s save a snapshot. --csv and --output keep the results; a summary plot is saved beside them. Ctrl-C,
SIGTERM and SIGHUP end a run cleanly: the CSV and video keep every frame processed until then.

examples:
  %(prog)s                                   # the webcam, live
  %(prog)s --source clip.mp4 --output annotated.mp4 --csv faces.csv --no-display
  %(prog)s --source photos/ --csv photos.csv --no-display
"""

import argparse
import os
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.analysis.analyzer import AnalyzerSettings, RunOutputs
from emotion_analyzer.analysis.classify import ENGINES
from emotion_analyzer.core.views import DEFAULT_TTA, TTA_VIEWS
from emotion_analyzer.common.cli import (non_negative_float, non_negative_int, number_type, positive_float,
                                         positive_int, probability, run_cli)
from emotion_analyzer.analysis.detect import cascade_from_flag, DETECTORS, DetectorSettings, STILL_DETECTOR
from emotion_analyzer.core.framing import DEFAULT_FRAMING, framing_from_flags
from emotion_analyzer.errors import UserError
from emotion_analyzer.analysis.smoothing import Smoothing
from emotion_analyzer.common.stops import at_safe_points

above_one = number_type(float, lambda v: v > 1, "a number above 1, such as 1.1")


def parse_args(argv, prog=None):
    defaults, outputs, detector, smoothing = AnalyzerSettings(), RunOutputs(), DetectorSettings(), Smoothing()
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="0",
                        help="webcam index, video file, image file, folder of images or stream URL"
                             " (default: %(default)s)")
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH,
                        help="trained .keras model; its .json beside it gives the labels (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=None, help="write the annotated video here (.mp4 or .avi)")
    parser.add_argument("--csv", type=Path, default=None, help="write one row per face per frame here")
    parser.add_argument("--no-display", dest="display", action="store_false",
                        help="do not open a window (for files, servers and tests)")
    parser.add_argument("--realtime", action="store_true",
                        help="for files: behave like a camera and skip frames when behind (default: every frame)")
    parser.add_argument("--csv-dir", type=Path, default=None, metavar="OUT",
                        help="with a folder --source: every video under it (recursively) into"
                             " OUT/<its path under the folder>.csv, the photos in it into OUT/photos.csv;"
                             " files whose CSV is there already are skipped, so a rerun finishes the job")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="with --csv-dir: worker processes, each loading the model once and reading"
                             " files one after another (default: %(default)s)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="with --csv-dir: read the files on a Ray cluster, --workers actors each holding"
                             " the model; auto joins the cluster RAY_ADDRESS names, else starts one here"
                             " (needs `pip install .[ray]`)")
    parser.add_argument("--max-frames", type=positive_int, default=None,
                        help="stop after N frames (default: run to the end)")
    steady = parser.add_argument_group("steady labels (videos, cameras, streams)")
    steady.add_argument("--no-smooth", dest="smooth", action="store_false",
                        help="show each frame's probabilities and top emotion as they come")
    steady.add_argument("--smooth-seconds", type=positive_float, default=smoothing.seconds,
                        help="time constant of each face's running average of probabilities (default: %(default)s)")
    steady.add_argument("--switch-margin", type=probability, default=smoothing.margin,
                        help="another emotion must lead the shown one by this much probability... (default:"
                             " %(default)s)")
    steady.add_argument("--switch-hold", type=non_negative_float, default=smoothing.hold,
                        help="...for this many seconds before the label changes (default: %(default)s)")
    parser.add_argument("--detector", choices=DETECTORS, default=defaults.detector,
                        help="what finds faces: haar (OpenCV's cascades), mtcnn (also turned heads; each face"
                             " turned upright by its eyes; in photos a face Haar finds too is framed from Haar's box, and"
                             " Haar's faces are used where mtcnn finds none), or"
                             " auto = mtcnn for images and folders, haar for videos, cameras and streams, where"
                             " mtcnn cannot keep the frame rate (default: %(default)s)")
    live = parser.add_argument_group("Haar detection in videos, cameras and streams (fast)")
    live.add_argument("--detect-every", type=positive_int, default=defaults.detect_every,
                      help="run the face detector every N frames and follow faces in between (default: %(default)s)")
    live.add_argument("--no-follow", dest="follow", action="store_false",
                      help="hold each box where the last detection put it instead of moving it with the face's"
                           " optical flow between detections (a little faster; boxes lag moving faces)")
    live.add_argument("--scale-factor", type=above_one, default=detector.scale_factor,
                      help="Haar cascade scale step between sizes; larger is faster (default: %(default)s)")
    live.add_argument("--min-neighbors", type=non_negative_int, default=detector.min_neighbors,
                      help="Haar cascade neighbours a face needs; larger means fewer false faces"
                           " (default: %(default)s)")
    live.add_argument("--min-size", type=positive_int, default=detector.min_size,
                      help="smallest face to look for, in pixels (default: %(default)s)")
    live.add_argument("--detect-width", type=positive_int, default=detector.detect_width,
                      help="shrink frames to this width before detection (default: %(default)s)")
    stills = parser.add_argument_group("Haar detection in images and folders (thorough)")
    stills.add_argument("--still-scale-factor", type=above_one, default=STILL_DETECTOR.scale_factor,
                        help="cascade scale step for photos (default: %(default)s)")
    stills.add_argument("--still-min-neighbors", type=non_negative_int, default=STILL_DETECTOR.min_neighbors,
                        help="cascade neighbours a face in a photo needs (default: %(default)s)")
    stills.add_argument("--still-detect-width", type=non_negative_int, default=STILL_DETECTOR.detect_width,
                        help="shrink photos to this width before detection, 0 = full resolution"
                             " (default: %(default)s)")
    stills.add_argument("--still-relative-neighbors", type=probability, default=STILL_DETECTOR.relative_neighbors,
                        help="drop faces with fewer neighbouring detections than this share of the strongest"
                             " face's, 0 = keep all (default: %(default)s)")
    stills.add_argument("--fallback-cascade", default=STILL_DETECTOR.fallback,
                        help="a cascade opencv-python ships (or a path) tried on a photo where the first finds no"
                             " face; 'none' for none (default: %(default)s)")
    reading = parser.add_argument_group("reading the face")
    reading.add_argument("--margin", type=non_negative_float, default=None,
                         help="the crop the CNN reads adds this share of the face box on each side (default: the"
                              f" model's JSON, else {DEFAULT_FRAMING.margin})")
    reading.add_argument("--offset", type=float, default=None,
                         help="and moves down by this share of the box's height (default: the model's JSON, else"
                              f" {DEFAULT_FRAMING.offset})")
    reading.add_argument("--tta", nargs="?", choices=tuple(TTA_VIEWS), const="flip", default=DEFAULT_TTA,
                         help="average each face's probabilities over test-time views: none, flip = the face and"
                              " its mirror (twice the CNN work), shifts = 5 shifts and their mirrors (10 times);"
                              " --tta alone means flip (default: %(default)s)")
    parser.add_argument("--engine", choices=ENGINES, default=defaults.engine,
                        help="what runs the CNN: auto = TensorFlow on a GPU, else TensorFlow Lite with int8"
                             " weights; tflite-int8, tflite (float32) or tf to choose; their speed and agreement"
                             " are measured by benchmarks/bench_engines.py (docs/benchmarks.md)"
                             " (default: %(default)s)")
    parser.add_argument("--snapshots", type=Path, default=outputs.snapshot_dir,
                        help="where the s key saves snapshots (default: %(default)s)")
    parser.add_argument("--cpu", action="store_true", help="hide GPUs and classify on the CPU")
    return parser.parse_args(argv)


def settings_from_args(args):
    """How faces are read, as the flags say."""
    fallback = cascade_from_flag(args.fallback_cascade)
    return AnalyzerSettings(
        model=args.model, detect_every=args.detect_every, follow=args.follow,
        smoothing=Smoothing(args.smooth_seconds, args.switch_margin, args.switch_hold) if args.smooth else None,
        tta=args.tta, engine=args.engine, framing=framing_from_flags(args.margin, args.offset),
        detector=args.detector,
        haar=DetectorSettings(args.scale_factor, args.min_neighbors, args.min_size, args.detect_width),
        still_haar=DetectorSettings(args.still_scale_factor, args.still_min_neighbors, args.min_size,
                                        args.still_detect_width, fallback, args.still_relative_neighbors))


def outputs_from_args(args):
    """Where this run writes and how it shows, as the flags say."""
    return RunOutputs(csv=args.csv, video=args.output, display=args.display, realtime=args.realtime,
                      max_frames=args.max_frames, snapshot_dir=args.snapshots)


def analyze(args):
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # must be set before TensorFlow initialises
    from emotion_analyzer.analysis.analyzer import Analyzer, check_run
    from emotion_analyzer.common.device import start_tensorflow

    settings, outputs = settings_from_args(args), outputs_from_args(args)
    if args.csv_dir:
        return analyze_folder_from_args(args, settings)
    if args.ray or args.workers != 1:
        raise UserError("--ray and --workers share out the files of a folder: give --csv-dir OUT too")
    check_run(settings.model, args.source, outputs)  # a wrong path is said at once, not after TensorFlow starts
    start_tensorflow()
    with at_safe_points():  # building the engine converts the model with TensorFlow
        analyzer = Analyzer(settings)
    return analyzer.run(args.source, outputs).exit_code


def analyze_folder_from_args(args, settings):
    """--csv-dir: a folder of videos, each into its own CSV, on --workers processes."""
    from emotion_analyzer.scale.folder import analyze_folder
    from emotion_analyzer.common.fileio import check_output_folder
    from emotion_analyzer.core.model import check_model_file

    if not Path(args.source).is_dir():
        raise UserError(f"--csv-dir reads a folder: --source {args.source} is not one")
    if args.csv or args.output:
        raise UserError("--csv-dir writes a CSV per file: drop --csv and --output")
    check_model_file(settings.model)
    check_output_folder(args.csv_dir, "--csv-dir")
    if args.workers == 1 and not args.ray:  # read here; otherwise each worker starts its own TensorFlow
        from emotion_analyzer.common.device import start_tensorflow

        start_tensorflow()
    return analyze_folder(settings, Path(args.source), args.csv_dir, args.workers, ray=args.ray)


def main(argv=None, prog=None) -> int:
    """The command: `emotion-analyzer` when installed; analyzer.py passes prog="python analyzer.py"."""
    return run_cli(analyze, parse_args(argv, prog))


if __name__ == "__main__":
    raise SystemExit(main())
