"""The analyzer: how it reads faces (AnalyzerSettings), and one run over a source (Analyzer.run).

What is checked before a run starts is in checks.py. A frame's route, each step once, in
Analyzer._read_video_frame (photos: _read_photo_frame): read (capture.py, a thread of its own) ->
detect or follow (detect.py; track.py for videos) -> crop (framing.py) -> classify, all faces of a
frame in one call (classify.py) -> smooth (smoothing.py, videos) -> draw (draw.py) -> write
(outputs.py: CSV, video, table; window.py). A face travels as a FaceReading (faces.py).
"""

import contextlib
from contextlib import nullcontext
import numbers
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.analysis.capture import open_source, ThreadedCapture
from emotion_analyzer.analysis.checks import check_output_paths, check_run, summary_plot_path
from emotion_analyzer.analysis.classify import ENGINES, EmotionClassifier
from emotion_analyzer.core.views import DEFAULT_TTA, TTA_VIEWS
from emotion_analyzer.common.cli import format_skipped, progress, warn
from emotion_analyzer.analysis.detect import DETECTORS, DetectorSettings, FaceDetector, MtcnnDetector, PHOTO_DETECTOR
from emotion_analyzer.analysis.draw import as_bgr, draw_face
from emotion_analyzer.analysis.faces import FaceReading, photo_faces
from emotion_analyzer.errors import UserError
from emotion_analyzer.common.settings import setting
from emotion_analyzer.core.framing import crop_faces, DEFAULT_FRAMING, Framing, framings_of_model
from emotion_analyzer.core.images import to_gray_uint8
from emotion_analyzer.core.model import check_model_file
from emotion_analyzer.analysis.outputs import (CsvLog, photo_answer, PhotoJson, PhotoOutput, PhotoSummary, Summary,
                                               UNREADABLE, VideoOutput)
from emotion_analyzer.analysis.smoothing import FaceSmoothers, Smoothing
from emotion_analyzer.analysis.stats import peak_rss_mb, RunStats
from emotion_analyzer.common.stops import deferred, exit_code
from emotion_analyzer.analysis.track import VideoFaces
from emotion_analyzer.analysis.window import Window


@dataclass(frozen=True)
class AnalyzerSettings:
    """How the analyzer reads faces, whatever the source and wherever a run writes. The command's
    --model, --detector and --tta, and --set NAME=VALUE for the rest, are made from these fields."""
    model: Path = setting(config.DEFAULT_MODEL_PATH, "the trained .keras model; its .json beside it gives the"
                                                     " labels and how it reads faces", option=True)
    detector: str = setting("auto", "what finds faces: haar (OpenCV's cascades), mtcnn (turned heads too, each"
                                    " face turned upright by its eyes), or auto = mtcnn for photos, haar for videos,"
                                    " cameras and streams", option=True, choices=DETECTORS)
    tta: str = setting(DEFAULT_TTA, "views averaged per face: none, flip = the face and its mirror (twice the CNN"
                                    " work), shifts = 5 shifts and their mirrors (10 times)", option=True,
                       choices=tuple(TTA_VIEWS))
    haar: DetectorSettings = setting(DetectorSettings(), "Haar's search in videos, cameras and streams (fast)")
    photo_haar: DetectorSettings = setting(PHOTO_DETECTOR, "Haar's search in photos (thorough)")
    detect_every: int = setting(3, "in videos, find faces every N frames and follow them in between")
    follow: bool = setting(True, "move boxes with the faces' optical flow between detections (else hold them)")
    framing: Framing | None = setting(None, "the crop's margin and offset for every detector (from Haar's"
                                            " default); none = each detector's from the model's JSON",
                                      start=DEFAULT_FRAMING)
    engine: str = setting("auto", "what runs the CNN: auto = TensorFlow on a GPU, else TensorFlow Lite with int8"
                                  " weights; tflite-int8, tflite (float32) or tf (docs/benchmarks.md)",
                          choices=ENGINES)
    smoothing: Smoothing | None = setting(help="steady labels in videos; none = each frame as it comes",
                                          factory=Smoothing)

    def check(self):
        if self.detect_every < 1:
            raise UserError(f"detect_every {self.detect_every}: expected at least 1")
        for name, allowed in (("detector", DETECTORS), ("tta", TTA_VIEWS), ("engine", ENGINES)):
            if getattr(self, name) not in allowed:
                raise UserError(f"{name} {getattr(self, name)}: expected one of {', '.join(allowed)}")
        self.haar.check("haar")
        self.photo_haar.check("photo_haar")
        if self.smoothing is not None:
            self.smoothing.check()
        return self

    def detector_kind(self, photo):
        """The detector photos (`photo`) or videos are searched with: "haar" or "mtcnn"."""
        return "mtcnn" if self.detector == "mtcnn" or (self.detector == "auto" and photo) else "haar"


@dataclass(frozen=True)
class RunOutputs:
    """Where one run writes and how it shows what it reads."""
    csv: Path | None = None         # one row per face per frame
    annotated: Path | None = None   # --output: the annotated video, photo, or folder of photos
    json: Path | None = None        # each photo's faces as JSON (photos only)
    table: object = None            # a results.RowTable that receives the CSV's rows in memory
    display: bool = True            # the live window
    realtime: bool = False          # a file played like a camera: frames skipped when behind
    max_frames: int | None = None
    snapshot_dir: Path = config.DEFAULT_SNAPSHOT_DIR
    progress: bool = True           # a progress bar for files read without a window
    summary_plot: bool = True       # the summary chart beside the CSV or video
    # A folder run going on with a video it stopped in: the frames it read then are passed over, the CSV
    # it kept is continued, and the faces found from here on get ids after the ones it holds.
    start_frame: int = 0
    first_face_id: int = 1
    csv_continues: bool = False
    on_frame: object = None         # called with the frames read so far, for a caller's own progress

    def check(self):
        frames = self.max_frames
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 1):
            raise UserError(f"max_frames {frames!r}: expected a whole number of at least 1, or None for all")
        return self


def untimed(stage):
    """A stage nobody times (the library's photos)."""
    return nullcontext()


class Analyzer:
    """The model, its compiled classifier and the detectors, built once; `run` reads one source."""

    def __init__(self, settings=None, log=print, warn=warn, say=None):
        """`log` the diagnostics (device, settings, timing), `say` the answers (a line per photo, the
        summary, what was written; `log` when None), `warn` what went wrong."""
        self.settings = (settings or AnalyzerSettings()).check()
        self.log, self.warn, self.say = log, warn, say or log
        model_path, info = check_model_file(self.settings.model)  # the Keras model loads only to convert it
        self.labels = info["labels"]
        self.framings = framings_of_model(info)
        if self.settings.framing:  # one framing for every detector; the faces equalized as the model reads
            self.framings = {kind: replace(self.settings.framing, equalize=framing.equalize)
                             for kind, framing in self.framings.items()}
        self.classifier = EmotionClassifier(model_path, self.labels, tta=self.settings.tta,
                                            engine=self.settings.engine, log=log)
        self.classifier.warm_up()
        self._detectors = {}

    def detector_for(self, photo):
        """The photo (`photo`) or video detector, built when first needed: MTCNN, with Haar's boxes for
        the faces Haar finds too and the faces only Haar finds added (photos), or Haar."""
        if photo not in self._detectors:
            haar_settings = self.settings.photo_haar if photo else self.settings.haar
            haar = FaceDetector(haar_settings)
            self._detectors[photo] = haar if self.settings.detector_kind(photo) == "haar" else MtcnnDetector(
                detect_width=haar_settings.detect_width, haar=haar if photo else None)
        return self._detectors[photo]

    def read_photos(self, images, stats=None):
        """The FaceReadings of each photo, the faces of all photos classified in one call; photos are
        separate, so nothing is followed or smoothed between them. `stats` (RunStats) times the stages."""
        timed = stats.stage if stats is not None else untimed
        crops = []
        for image in images:
            gray = to_gray_uint8(image)
            with timed("detect"):
                found = self.detector_for(photo=True).find(image, gray)
            crops.append(crop_faces(gray, found.boxes, [self.framings[kind] for kind in found.detectors],
                                    found.eyes))
        with timed("classify"):
            probabilities = self.classifier.classify(np.concatenate([c.pixels for c in crops])) if crops else []
        faces, start = [], 0
        for photo in crops:
            faces.append(photo_faces(photo.boxes, probabilities[start:start + len(photo)]))
            start += len(photo)
        return faces

    def _read_photo_frame(self, frame, stats):
        """(canvas, FaceReadings) of one photo."""
        faces = self.read_photos([frame.image], stats)[0]
        return self.draw(frame.image, faces, stats), faces

    def _read_video_frame(self, frame, video_faces, smoothers, stats):
        """(canvas, FaceReadings) of one video frame: the faces placed, cropped, classified, smoothed and
        drawn; then the detection started on this frame, if any, is applied for the next."""
        gray = to_gray_uint8(frame.image)
        found = video_faces.place(frame.image, gray, stats)
        crops = crop_faces(gray, found.boxes, self.framings[self.settings.detector_kind(False)])
        with stats.stage("classify"):
            probabilities = self.classifier.classify(crops.pixels)
        face_ids = [found.face_ids[i] for i in crops.used]
        smoothed = smoothers.update(face_ids, probabilities, frame.time_s, found.remembered)
        faces = [FaceReading(face_id, box, probs, shown)
                 for face_id, box, (probs, shown) in zip(face_ids, crops.boxes, smoothed)]
        canvas = self.draw(frame.image, faces, stats)
        video_faces.take_detection(stats)
        return canvas, faces

    def draw(self, image, faces, stats=None):
        """A BGR copy of `image` with its FaceReadings drawn on it."""
        with (stats.stage if stats is not None else untimed)("draw"):
            canvas = as_bgr(image)
            for face in faces:
                draw_face(canvas, face, self.labels)
        return canvas

    def run(self, source, outputs=None, opened=None):
        """Analyze `source` (or an already opened (kind, reader) pair) into `outputs`; return RunStats."""
        outputs = (outputs or RunOutputs()).check()
        if opened is None:
            check_run(self.settings.model, source, outputs)
        else:
            check_output_paths(self.settings.model, source, opened[0], outputs)
        kind, reader = opened or open_source(source)
        if outputs.start_frame:
            reader.skip(outputs.start_frame)
        photo = kind in ("image", "folder")
        stats, summary = RunStats(), PhotoSummary(self.labels) if photo else Summary(self.labels)
        self.log(f"device: {self.classifier.device}, CNN on {self.classifier.engine_name}; source: {source} ({kind});"
                 f" labels: {', '.join(self.labels)}")
        smoothing = None if photo else self.settings.smoothing
        finder = self.settings.detector_kind(photo)
        self.log(f"faces found by {finder}{' (Haar where it finds none)' if photo and finder == 'mtcnn' else ''};"
                 f" views per face: {self.classifier.tta}; crop: {self.framings[finder]};"
                 f" smoothing: {smoothing or 'off'}")
        started = time.perf_counter()
        with contextlib.ExitStack() as stack:  # closed in reverse: detection, capture, then the writers
            # a photo's answer line is its progress: no bar beside the lines
            writers = open_writers(stack, replace(outputs, progress=False) if photo else outputs, self.labels,
                                   kind, reader, self.log)
            stack.callback(finish_stats, stats, started, reader, writers)
            live = kind in ("camera", "stream")
            capture = stack.enter_context(ThreadedCapture(reader, latest_only=live or outputs.realtime,
                                                          live_clock=live))
            if photo:
                read = self._read_photo_frame
            else:
                video_faces = stack.enter_context(VideoFaces(self.detector_for(photo=False), self.settings.detect_every,
                                                             self.settings.follow, outputs.first_face_id))
                smoothers = FaceSmoothers(smoothing)

                def read(frame, stats):
                    return self._read_video_frame(frame, video_faces, smoothers, stats)
            try:
                loop(capture, read, writers, summary, stats, outputs, self.say if photo else None)
            except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP (stops.py)
                stats.interrupted, stats.exit_code = str(exc) or "SIGINT", exit_code(exc)
            stats.ended_early, stats.dropped = capture.error, capture.dropped
            if writers.window and kind == "image" and not stats.interrupted and stats.frames:
                writers.window.hold()
        if stats.frames == 0 and not stats.interrupted and not outputs.start_frame:
            raise UserError(nothing_read_message(kind, source, stats))
        report(stats, summary, outputs, self.log, self.say, self.warn)
        return stats


@dataclass
class Writers:
    """Where each frame's results go during a run; None for what the run does not write."""
    tables: list          # CsvLog and RowTable: one row per face
    csv: CsvLog | None
    annotated: VideoOutput | PhotoOutput | None
    json: PhotoJson | None
    window: Window | None
    bar: object           # a progress bar, or None


def open_writers(stack, outputs, labels, kind, reader, log):
    """The run's writers for a source of `kind`, each closed by `stack` (files committed complete) when
    the run ends."""
    def kept(writer):
        return stack.enter_context(contextlib.closing(writer))

    csv_log = kept(CsvLog(outputs.csv, labels, outputs.csv_continues)) if outputs.csv else None
    annotated = None
    if outputs.annotated:
        annotated = kept(PhotoOutput(outputs.annotated, into_folder=kind == "folder") if kind in ("image", "folder")
                         else VideoOutput(outputs.annotated, reader.fps))
    json = kept(PhotoJson(outputs.json, labels)) if outputs.json else None
    window = stack.enter_context(contextlib.closing(Window(outputs.snapshot_dir, log))) if outputs.display else None
    bar = None
    if window is None and outputs.progress:  # a live window shows its own frame rate
        total = min(n for n in (reader.frame_count, outputs.max_frames, float("inf")) if n)
        bar = stack.enter_context(progress(total=None if total == float("inf") else total, desc="analyzing",
                                           unit="frame"))
    return Writers([t for t in (csv_log, outputs.table) if t is not None], csv_log, annotated, json, window, bar)


def loop(capture, read, writers, summary, stats, outputs, answer=None):
    """Read, analyze and write frames until the source ends, max_frames, or the window is closed; photos
    (`answer`: where each photo's one-line answer goes) have a row even with no face."""
    while outputs.max_frames is None or stats.frames < outputs.max_frames:
        started = time.perf_counter()
        with stats.stage("capture"):
            frame = capture.next_frame()
        if frame is None:
            break
        if frame.image is None:  # a photo that cannot be read: a row that says so, and the reason said at the end
            with deferred():
                for table in writers.tables:
                    table.write_no_face(frame, UNREADABLE)
            continue
        canvas, faces = read(frame, stats)
        with deferred():  # a frame is in every output and in the counts, or in none
            for face in faces:
                for table in writers.tables:
                    table.write(frame, face)
            if answer is None:
                for face in faces:
                    summary.add(frame.time_s, face)
            else:
                for table in writers.tables if not faces else ():
                    table.write_no_face(frame)
                summary.add_photo(faces)
                if writers.json:
                    writers.json.add(frame, faces)
                answer(photo_answer(frame.name, faces, summary.labels))
            if writers.annotated:
                writers.annotated.write(canvas, frame.name)
            stats.frame_done(started, len(faces))
        if writers.bar is not None:
            writers.bar.update()
        if outputs.on_frame is not None:
            outputs.on_frame(stats.frames)
        if writers.window and not writers.window.show(canvas, stats.fps_estimate, len(faces)):
            break


def finish_stats(stats, started, reader, writers):
    """What a run measured, once its source is closed."""
    stats.wall_seconds = time.perf_counter() - started
    stats.skipped = list(reader.skipped)
    stats.csv_rows = writers.csv.rows if writers.csv else 0
    stats.video_frames = writers.annotated.frames if writers.annotated else 0
    stats.peak_rss_mb = peak_rss_mb()


def nothing_read_message(kind, source, stats):
    what = {"video": "cannot decode video", "image": "cannot read image", "folder": "no readable image in"}
    return (f"{what.get(kind, 'no frame from')} {source}"
            + (f": {stats.ended_early}" if stats.ended_early else "")
            + (f" ({len(stats.skipped)} file(s) unreadable)" if stats.skipped else ""))


def report(stats, summary, outputs, log, say, warn):
    """What a run did: timing (`log`), what was skipped or cut short, the summary and what was written
    (`say`)."""
    for line in stats.timing_lines():
        log(line)
    if stats.skipped:
        for line in format_skipped((Path(p).name, why) for p, why in stats.skipped):
            say(line)
    if stats.dropped:
        log(f"skipped {stats.dropped:,} stale frame(s) from the live source to stay real-time")
    if stats.ended_early:
        warn(f"{stats.ended_early}; finished with what was captured")
    if stats.interrupted:
        say(f"interrupted ({stats.interrupted}): the CSV and video hold every frame processed until then")
    for line in summary.lines():
        say(line)
    if outputs.csv:
        say(f"wrote {stats.csv_rows:,} rows to {outputs.csv}")
    if outputs.annotated:
        drawn = "annotated photo(s)" if isinstance(summary, PhotoSummary) else "frames"
        say(f"wrote {stats.video_frames:,} {drawn} to {outputs.annotated}")
    if outputs.json:
        say(f"wrote {summary.photos:,} photo(s) to {outputs.json}")
    keep = outputs.csv or outputs.annotated or outputs.json
    if keep and summary.has_faces() and outputs.summary_plot:
        plot_path = summary_plot_path(keep)
        summary.save_plot(plot_path)
        say(f"summary plot: {plot_path}")
