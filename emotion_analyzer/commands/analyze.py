"""Read the emotion on every face: webcam, video file, photo, folder of photos or videos, or stream URL.

Finds every face (OpenCV's Haar cascade in videos, MTCNN in photos), classifies all faces of a frame
in one call of the trained CNN, and draws a box, the top emotion, its confidence and a bar chart per
face. Keys in the window: q/Esc quit, p pause, s snapshot. --csv, --output and --json keep the results,
a summary chart beside them; Ctrl-C, SIGTERM and SIGHUP end a run cleanly, keeping every frame read.
Detector, crop and smoothing tuning: --set help.

examples:
  %(prog)s                                   # the webcam, live
  %(prog)s --source clip.mp4 --output annotated.mp4 --csv faces.csv --no-display
  %(prog)s --source photos/ --csv photos.csv --output annotated/ --no-display
  %(prog)s --source recordings/ --csv-dir results/ --workers 2
  %(prog)s --source clip.mp4 --set haar.min_neighbors=8 --set smoothing=none
"""

from pathlib import Path

from emotion_analyzer.analysis.analyzer import AnalyzerSettings, RunOutputs
from emotion_analyzer.common import settings as settable
from emotion_analyzer.common.device import hide_gpus
from emotion_analyzer.common.cli import Parser, positive_int, run_cli, silent
from emotion_analyzer.common.stops import at_safe_points
from emotion_analyzer.errors import UserError


def parse_args(argv, prog=None):
    outputs = RunOutputs()
    parser = Parser(prog=prog, description=__doc__)
    parser.add_argument("--source", default="0",
                        help="webcam index, video file, photo, folder or stream URL (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=None,
                        help="write the annotated video (.mp4, .avi), photo (.jpg, .png) or photos (a folder) here")
    parser.add_argument("--csv", type=Path, default=None, help="write one row per face per frame here")
    parser.add_argument("--json", type=Path, default=None,
                        help="photos: write each one's faces here as JSON")
    parser.add_argument("--no-display", dest="display", action="store_false",
                        help="do not open a window (for files, servers and tests)")
    parser.add_argument("--max-frames", type=positive_int, default=None,
                        help="stop after N frames (default: run to the end)")
    parser.add_argument("--realtime", action="store_true",
                        help="for files: behave like a camera and skip frames when behind (default: every frame)")
    settable.add_options(parser, AnalyzerSettings)
    parser.add_argument(settable.SET_FLAG, dest="set", action="append", type=settable.parse_assignment, default=[],
                        metavar="NAME=VALUE", help="any other setting, such as haar.min_neighbors=8, framing.margin=0.2"
                        " or smoothing=none (repeatable); --set help lists them all with their defaults")
    folders = parser.add_argument_group("a folder of videos and photos")
    folders.add_argument("--csv-dir", type=Path, default=None, metavar="OUT",
                         help="each video under a folder --source into OUT/<its path>.csv, photos into"
                              " OUT/photos.csv; a rerun reads what is not complete (a stopped video from there)")
    folders.add_argument("--workers", type=positive_int, default=1,
                         help="worker processes, each loading the model once (default: %(default)s)")
    folders.add_argument("--ray", default=None, metavar="ADDRESS",
                         help="read the files on a Ray cluster instead, --workers actors; auto joins the cluster"
                              " RAY_ADDRESS names, else starts one here (needs `pip install .[ray]`)")
    parser.add_argument("--snapshots", type=Path, default=outputs.snapshot_dir,
                        help="where the s key saves snapshots (default: %(default)s)")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("--verbose", action="store_true",
                      help="also print the device, the settings and the timing (frame rate, latency, memory)")
    talk.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors (for scripts)")
    parser.add_argument("--cpu", action="store_true", help="hide GPUs and classify on the CPU")
    args = parser.parse_args(argv)
    if any(name == "help" for name, _ in args.set):
        print("settings for --set NAME=VALUE, with their defaults:")
        print("\n".join(settable.describe(AnalyzerSettings)))
        parser.exit(0)
    return args


def settings_from_args(args):
    """How faces are read, as the options and --set say."""
    return settable.settings_from(args, AnalyzerSettings).check()


def outputs_from_args(args):
    """Where this run writes and how it shows, as the flags say."""
    return RunOutputs(csv=args.csv, annotated=args.output, json=args.json, display=args.display, realtime=args.realtime,
                      max_frames=args.max_frames, snapshot_dir=args.snapshots, progress=not args.quiet)


def analyze(args):
    if args.cpu:
        hide_gpus()
    from emotion_analyzer.analysis.analyzer import Analyzer
    from emotion_analyzer.analysis.checks import check_run
    from emotion_analyzer.analysis.capture import open_source

    settings, outputs = settings_from_args(args), outputs_from_args(args)
    if args.csv_dir:
        return analyze_folder_from_args(args, settings)
    if args.ray or args.workers != 1:
        raise UserError("--ray and --workers share out the files of a folder: give --csv-dir OUT too")
    # What can be wrong with the source or the outputs is said before TensorFlow starts (seconds).
    check_run(settings.model, args.source, outputs)
    kind, reader = open_source(args.source)  # the camera opens, the video decodes, the folder has photos
    try:
        with at_safe_points():  # building the engine may convert the model with TensorFlow
            analyzer = Analyzer(settings, log=print if args.verbose else silent, say=silent if args.quiet else print)
    except BaseException:
        reader.release()
        raise
    return analyzer.run(args.source, outputs, opened=(kind, reader)).exit_code


def analyze_folder_from_args(args, settings):
    """--csv-dir: a folder of videos, each into its own CSV, on --workers processes."""
    from emotion_analyzer.scale.folder import analyze_folder
    from emotion_analyzer.common.fileio import check_output_folder
    from emotion_analyzer.core.model import check_model_file

    if not Path(args.source).is_dir():
        raise UserError(f"--csv-dir reads a folder: --source {args.source} is not one")
    if args.csv or args.output or args.json:
        raise UserError("--csv-dir writes a CSV per file: drop --csv, --output and --json")
    check_model_file(settings.model)
    check_output_folder(args.csv_dir, "--csv-dir")  # TensorFlow starts only where a file is read (scale.folder)
    return analyze_folder(settings, Path(args.source), args.csv_dir, args.workers, ray=args.ray,
                          log=silent if args.quiet else print, shown=not args.quiet)


def main(argv=None, prog=None) -> int:
    """The command: `emotion-analyzer` when installed; analyzer.py passes prog="python analyzer.py"."""
    return run_cli(analyze, parse_args(argv, prog))
