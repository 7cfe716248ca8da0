"""The live analyzer: capture -> detect/follow faces -> classify all faces at once -> draw -> keep.

One detection (every --detect-every frames) and one classification call per frame. Between
detections boxes move with the faces' optical flow, and detections are matched to faces by box overlap,
so labels are smoothed per face and the cascade, the largest cost, need not run on every frame.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.capture import ThreadedCapture, open_source, parse_source
from emotion_analyzer.cli import exit_code, progress
from emotion_analyzer.classify import EmotionClassifier
from emotion_analyzer.detect import (STILL_DETECTOR, DetectorSettings, FaceDetector, FaceTracker, Framing, crop_faces,
                                     framing_of_model)
from emotion_analyzer.device import describe_device
from emotion_analyzer.draw import as_bgr, draw_face, draw_status
from emotion_analyzer.errors import UserError
from emotion_analyzer.fileio import check_output_path
from emotion_analyzer.images import list_image_files, to_gray_uint8
from emotion_analyzer.results import CsvLog, Summary, VideoOutput, check_video_name
from emotion_analyzer.smoothing import Smoothing
from emotion_analyzer.stats import RunStats, peak_rss_mb
from emotion_analyzer.window import Window, check_display_available


@dataclass
class AnalyzerOptions:
    source: str = "0"
    model: Path = config.DEFAULT_MODEL_PATH
    output: Path | None = None
    csv: Path | None = None
    display: bool = True
    realtime: bool = False
    max_frames: int | None = None
    smoothing: Smoothing | None = field(default_factory=Smoothing)  # None: each frame as it comes
    detect_every: int = 3           # run the cascade every N frames, follow faces in between
    follow: bool = True             # move boxes with the faces' optical flow between detections (else hold them)
    tta: str | None = None          # test-time views per face (classify.TTA_VIEWS); None: STILL_TTA / LIVE_TTA
    engine: str = "auto"            # auto | tflite | tf: what runs the CNN (see classify.py)
    detector: DetectorSettings = field(default_factory=DetectorSettings)    # for videos, cameras, streams
    still_detector: DetectorSettings = STILL_DETECTOR                      # for images and folders
    framing: Framing | None = None  # None: the model's JSON says, else detect.DEFAULT_FRAMING (framing_of_model)
    snapshot_dir: Path = config.DEFAULT_SNAPSHOT_DIR
    progress: bool = True           # a progress bar for files read without a window


# Test-time views by default: the face and its mirror. For photos always; for live sources because
# benchmarks/bench_analyzer.py still gives over 30 frames/s and 15x the original loop with them
# (docs/real_faces.md).
STILL_TTA = "flip"
LIVE_TTA = "flip"


def is_still_source(source):
    try:
        return parse_source(source)[0] in ("image", "folder")
    except UserError:
        return False  # run() says what is wrong with it


def summary_plot_path(kept):
    """The summary chart saved beside the CSV or video a run keeps."""
    return Path(kept).with_name(Path(kept).stem + "_summary.png")


def input_files(options, source):
    """Every file the run reads: the model, its JSON, and the source's file or the images of its folder."""
    inputs = [Path(options.model), config.model_info_path(options.model)]
    source = Path(str(source))
    if source.is_dir():
        inputs += list_image_files(source)[0]
    elif source.exists():
        inputs.append(source)
    return inputs


def check_output_paths(options, source=None):
    """Before any work: every output can be written and none is an input or another output of the run
    (of options.source unless another `source` is given)."""
    outputs = {"--output": options.output, "--csv": options.csv}
    outputs = {flag: Path(path) for flag, path in outputs.items() if path}
    if options.output:
        check_video_name(options.output)
    if outputs:
        outputs["summary chart"] = summary_plot_path(options.csv or options.output)
    inputs = {path.resolve(): path for path in input_files(options, options.source if source is None else source)}
    seen = {}
    for flag, path in outputs.items():
        resolved = path.resolve()
        if resolved in inputs:
            raise UserError(f"{flag} {path} is the input {inputs[resolved]}: writing it would destroy it;"
                            " choose another name")
        if resolved in seen:
            raise UserError(f"{flag} {path} is also the {seen[resolved]}; give each output its own name")
        seen[resolved] = flag
        check_output_path(path, flag)


class Analyzer:
    """Everything needed per frame, built once: model, compiled classifier, cascade, tracker.

    Photos (images, folders) and videos (files, cameras, streams) each have their own detector settings
    and test-time views; those of options.source are built at once, the other kind's when first used
    (the library's EmotionRecognizer reads both with one Analyzer).
    """

    def __init__(self, options, log=print, still=None):
        from emotion_analyzer.model import load_trained_model

        self.options = options
        self.log = log
        if options.detect_every < 1:
            raise UserError(f"--detect-every {options.detect_every}: expected at least 1")
        if options.max_frames is not None and options.max_frames < 1:
            raise UserError(f"--max-frames {options.max_frames}: expected a positive number")
        self.model, info = load_trained_model(options.model)
        self.labels = info["labels"]
        self.framing = options.framing or framing_of_model(info)
        self._classifiers, self._detectors = {}, {}
        self.use_settings_for(is_still_source(options.source) if still is None else still)
        self.tracker = FaceTracker(options.smoothing)
        self.fps_estimate = 0.0
        self.detection_pool = None
        self.pending_detection = None

    def use_settings_for(self, still):
        """Classify and detect as photos (`still`) or videos are: their views per face and detector settings."""
        options = self.options
        tta = options.tta or (STILL_TTA if still else LIVE_TTA)
        if tta not in self._classifiers:
            classifier = EmotionClassifier(self.model, self.labels, tta=tta, engine=options.engine, log=self.log)
            classifier.warm_up()
            self._classifiers[tta] = classifier
        if still not in self._detectors:
            self._detectors[still] = FaceDetector(options.still_detector if still else options.detector)
        self.classifier, self.detector = self._classifiers[tta], self._detectors[still]

    def _timed_detect(self, gray):
        started = time.perf_counter()
        return self.detector.detect(gray), time.perf_counter() - started

    def read_photos(self, images, stats):
        """Every face of each photo as (box, probabilities), the faces of all photos classified in one call.

        Photos are separate: nothing is followed or smoothed between them.
        """
        if not images:
            return []
        crops = []
        for image in images:
            gray = to_gray_uint8(image)
            boxes, seconds = self._timed_detect(gray)
            stats.add_stage("detect", seconds)
            crops.append(crop_faces(gray, boxes, self.framing))
        started = time.perf_counter()
        probabilities = self.classifier.classify(np.concatenate([batch for batch, _, _ in crops]))
        stats.add_stage("classify", time.perf_counter() - started)
        faces, start = [], 0
        for batch, _, boxes in crops:
            faces.append(list(zip(boxes, probabilities[start:start + len(batch)])))
            start += len(batch)
        return faces

    def find_faces(self, gray, frame_number, stats):
        """Tracks to classify in this video frame.

        The first frame is detected on the spot. Then every --detect-every frames the cascade starts on
        a worker thread and runs while this frame is classified and drawn (on the other core); its boxes
        are applied by finish_detection() and used from the next frame.
        """
        if frame_number == 0:
            boxes, seconds = self._timed_detect(gray)
            stats.add_stage("detect", seconds)
            return self.tracker.update(boxes)
        if frame_number % self.options.detect_every == 0:
            self.pending_detection = self.detection_pool.submit(self._timed_detect, gray)
        return [t for t in self.tracker.tracks if t.missed == 0]

    def finish_detection(self, stats):
        if self.pending_detection is None:
            return
        boxes, seconds = self.pending_detection.result()
        self.pending_detection = None
        stats.add_stage("detect", seconds)
        self.tracker.update(boxes)

    def read_video_frame(self, frame, frame_number, stats):
        """The faces of one video frame as (face id, box, smoothed probabilities, shown label index)."""
        gray = to_gray_uint8(frame.image)
        if self.options.follow:
            started = time.perf_counter()
            self.tracker.follow(gray)
            stats.add_stage("follow", time.perf_counter() - started)
        tracks = self.find_faces(gray, frame_number, stats)
        started = time.perf_counter()
        batch, used, boxes = crop_faces(gray, [t.box for t in tracks], self.framing)
        kept = [tracks[i] for i in used]
        smoothed = self.tracker.add_probabilities(kept, self.classifier.classify(batch), frame.time_s)
        stats.add_stage("classify", time.perf_counter() - started)
        return [(track.face_id, box, probs, shown) for track, box, (probs, shown) in zip(kept, boxes, smoothed)]

    def process(self, frame, frame_number, still_images, stats):
        """Detect, classify and draw one frame; return the annotated canvas and its faces as (face id, box,
        probabilities, shown label index)."""
        if still_images:
            faces = [(face_id, box, probs, int(np.argmax(probs)))
                     for face_id, (box, probs) in enumerate(self.read_photos([frame.image], stats)[0], start=1)]
        else:
            faces = self.read_video_frame(frame, frame_number, stats)
        started = time.perf_counter()
        canvas = as_bgr(frame.image)
        for face_id, box, probs, shown in faces:
            draw_face(canvas, box, probs, self.labels, face_id, shown)
        draw_status(canvas, self.fps_estimate, len(faces))
        drawn = time.perf_counter()
        self.finish_detection(stats)
        stats.add_stage("draw", drawn - started)
        stats.add_stage("wait for detection", time.perf_counter() - drawn)
        return canvas, faces

    def run(self, opened_source=None, source=None, rows=None):
        """Analyze options.source, or `source`, or an already opened (kind, reader) pair; return RunStats.

        `rows`, when given, receives every CSV row as well (results.RowTable).
        """
        options, log = self.options, self.log
        source = options.source if source is None else source
        if options.display:
            check_display_available()
        check_output_paths(options, source)
        kind, reader = opened_source or open_source(source)
        live = kind in ("camera", "stream")
        still_images = kind in ("image", "folder")
        self.use_settings_for(still_images)
        self.tracker = FaceTracker(options.smoothing)  # each run follows its own faces
        window = csv_log = video = None
        summary = Summary(self.labels)
        stats = RunStats()
        smoothing = options.smoothing if not still_images else None
        log(f"device: {describe_device()}, CNN on {self.classifier.engine_name}; source: {source} ({kind});"
            f" labels: {', '.join(self.labels)}")
        log(f"views per face: {self.classifier.tta}; crop: {self.framing}; smoothing:"
            f" {smoothing or 'off'}")
        started = time.perf_counter()
        self.detection_pool = ThreadPoolExecutor(1, thread_name_prefix="detect")
        capture = ThreadedCapture(reader, latest_only=live or options.realtime, live_clock=live)
        try:
            window = Window(options.snapshot_dir, log) if options.display else None
            csv_log = CsvLog(options.csv, self.labels) if options.csv else None
            video = VideoOutput(options.output, reader.fps) if options.output else None
            tables = [table for table in (csv_log, rows) if table is not None]
            with capture:
                try:
                    self._loop(capture, window, tables, video, summary, stats, still_images)
                except KeyboardInterrupt as exc:  # Ctrl-C, and SIGTERM/SIGHUP through cli.handle_stop_signals
                    stats.interrupted, stats.exit_code = str(exc) or "SIGINT", exit_code(exc)
                stats.ended_early = capture.error
                stats.dropped = capture.dropped
            if window and kind == "image" and not stats.interrupted and stats.frames:
                window.hold()
        finally:
            stats.wall_seconds = time.perf_counter() - started
            capture.close()  # releases the source, unless a reader stalled in read() still holds it
            self.detection_pool.shutdown(wait=True)
            self.pending_detection = None
            if csv_log:
                csv_log.close()
                stats.csv_rows = csv_log.rows
            if video:
                video.close()
                stats.video_frames = video.frames
            if window:
                window.close()
            stats.skipped = list(reader.skipped)
            stats.peak_rss_mb = peak_rss_mb()
        if stats.frames == 0 and not stats.interrupted:
            what = {"video": "cannot decode video", "image": "cannot read image", "folder": "no readable image in"}
            raise UserError(f"{what.get(kind, 'no frame from')} {source}"
                            + (f": {stats.ended_early}" if stats.ended_early else "")
                            + (f" ({len(stats.skipped)} file(s) unreadable)" if stats.skipped else ""))
        self._report(stats, summary)
        return stats

    def _progress_bar(self, reader, window):
        """A progress bar for files processed without a window (a live window shows its own FPS)."""
        if window is not None or not self.options.progress:
            return None
        total = getattr(reader, "frame_count", None)
        if self.options.max_frames:
            total = min(total or self.options.max_frames, self.options.max_frames)
        return progress(total=total, desc="analyzing", unit="frame")

    def _loop(self, capture, window, tables, video, summary, stats, still_images):
        bar = self._progress_bar(capture.reader, window)
        try:
            self._loop_frames(capture, window, tables, video, summary, stats, still_images, bar)
        finally:
            if bar is not None:
                bar.close()

    def _loop_frames(self, capture, window, tables, video, summary, stats, still_images, bar):
        last = time.perf_counter()
        while self.options.max_frames is None or stats.frames < self.options.max_frames:
            t0 = time.perf_counter()
            frame = capture.next_frame()
            if frame is None:
                break
            stats.add_stage("capture", time.perf_counter() - t0)
            canvas, faces = self.process(frame, stats.frames, still_images, stats)
            for face_id, box, probs, shown in faces:
                face_key = f"{frame.name}#{face_id}" if still_images else face_id
                for table in tables:
                    table.write(frame.name, frame.index, frame.time_s, face_id, box, probs, shown)
                summary.add(face_key, frame.time_s, shown)
            if video:
                video.write(canvas)
            stats.frames += 1
            stats.faces += len(faces)
            now = time.perf_counter()
            stats.latencies.append(now - t0)
            instant = 1 / max(now - last, 1e-6)
            self.fps_estimate = 0.9 * self.fps_estimate + 0.1 * instant if self.fps_estimate else instant
            last = now
            if bar is not None:
                bar.update()
            if window and not window.show(canvas):
                break

    def _report(self, stats, summary):
        log, options = self.log, self.options
        for line in stats.timing_lines():
            log(line)
        if stats.skipped:
            log(f"skipped {len(stats.skipped):,} unreadable file(s): "
                + ", ".join(f"{Path(p).name} ({why})" for p, why in stats.skipped[:5])
                + (", ..." if len(stats.skipped) > 5 else ""))
        if stats.dropped:
            log(f"skipped {stats.dropped:,} stale frame(s) from the live source to stay real-time")
        if stats.ended_early:
            log(f"warning: {stats.ended_early}; finished with what was captured")
        if stats.interrupted:
            log(f"interrupted ({stats.interrupted}): the CSV and video hold every frame processed until then")
        for line in summary.lines():
            log(line)
        if options.csv:
            log(f"wrote {stats.csv_rows:,} rows to {options.csv}")
        if options.output:
            log(f"wrote {stats.video_frames:,} frames to {options.output}")
        keep = options.csv or options.output
        if keep and summary.per_face:
            plot_path = summary_plot_path(keep)
            summary.save_plot(plot_path)
            log(f"summary plot: {plot_path}")

