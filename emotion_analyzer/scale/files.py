"""One file of a folder run: which files a folder holds, and reading one into its CSV (or table) so
that a CSV is there complete or not at all. Shared by the process pool (batch.py) and Ray's actors."""

import csv
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.common.fileio import printable, spreadsheet_safe, write_json_atomic
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.images import files_under, image_files_under, is_image_name, photo_name

PHOTOS_CSV = "photos.csv"  # the photos directly under the folder, as one set
REPORT_SECONDS = 0.5  # how often a file under way says how far it got


@dataclass
class FileResult:
    """What became of one file of the folder."""
    source: str
    frames: int = 0
    faces: int = 0
    error: str | None = None        # why it could not be read
    warning: str | None = None      # read, but it ended before its header said (cut short)


def is_video_name(path):
    return Path(path).suffix.lower() in config.VIDEO_EXTENSIONS


def folder_jobs(folder, out_dir):
    """[(source, its CSV)]: every video under `folder` (files_under: subfolders and linked ones too,
    hidden files aside) to out_dir/<its path under folder>.csv, and its photos to out_dir/photos.csv."""
    folder, out_dir = Path(folder), Path(out_dir)
    files = files_under(folder)
    jobs = [(video, out_dir / video.relative_to(folder).with_name(video.name + ".csv"))
            for video in files if is_video_name(video)]
    if any(is_image_name(path) for path in files):
        jobs.append((folder, out_dir / PHOTOS_CSV))
    return jobs


def frames_in(source):
    """The frames a file announces (a video's header, a folder's photos), 0 when it says none."""
    from emotion_analyzer.analysis.capture import VideoStream

    if Path(source).is_dir():
        return len(image_files_under(source))
    try:
        stream = VideoStream("video", source)
    except UserError:
        return 0  # its error is said when it is read
    try:
        return stream.frame_count or 0
    finally:
        stream.release()


def is_complete(source, csv_path):
    """Whether `csv_path` holds all of `source` as it is now: written after the video last changed, or,
    for a folder's photos, after every photo and naming each (a photo added later, its old date kept by
    a copy, is read too)."""
    if not csv_path.is_file():
        return False
    written = csv_path.stat().st_mtime_ns
    if not Path(source).is_dir():
        return Path(source).stat().st_mtime_ns <= written
    photos = image_files_under(source)
    if any(photo.stat().st_mtime_ns > written for photo in photos):
        return False
    with open(csv_path, newline="") as handle:
        named = {row[0] for row in csv.reader(handle)}
    return all(spreadsheet_safe(photo_name(photo, source)) in named for photo in photos)


def file_state(source):
    """What says a file changed: its size and modification time (None for a folder)."""
    if Path(source).is_dir():
        return None
    status = Path(source).stat()
    return status.st_size, status.st_mtime_ns


def partial_paths(csv_path):
    """(the CSV being written, the record of a stop kept with it): a video stopped in is continued."""
    return csv_path.with_name(csv_path.name + ".partial"), csv_path.with_name(csv_path.name + ".partial.json")


def settings_digest(settings):
    """What decides a video's rows: the analyzer's settings and the model file as it is now."""
    described = json.dumps([dataclasses.asdict(settings), file_state(settings.model)], sort_keys=True, default=str)
    return hashlib.blake2b(described.encode(), digest_size=8).hexdigest()


def keep_work(csv_path, state, settings, frames):
    """After a stop: the partial CSV (complete for its first `frames` frames) stays, with a record of
    what it holds, so that the next run goes on from there."""
    partial, record = partial_paths(csv_path)
    write_json_atomic(record, {"source": list(state), "settings": settings_digest(settings), "frames": frames,
                               "csv_bytes": partial.stat().st_size})


def kept_work(source, csv_path, settings):
    """(frames read, faces in them, next face id) of a stop's partial CSV that still fits the video and the settings, or
    None (and whatever was kept is removed: it would be mixed with another reading)."""
    partial, record = partial_paths(csv_path)
    try:
        kept = json.loads(record.read_text())
        if (kept["source"] == list(file_state(source)) and kept["settings"] == settings_digest(settings)
                and kept["csv_bytes"] == partial.stat().st_size and kept["frames"] > 0):
            with open(partial, newline="") as handle:
                ids = [int(row["face"]) for row in csv.DictReader(handle)]
            return kept["frames"], len(ids), max(ids, default=0) + 1
    except (OSError, ValueError, KeyError, TypeError):
        pass
    discard_work(csv_path)
    return None


def discard_work(csv_path):
    for path in partial_paths(csv_path):
        path.unlink(missing_ok=True)


def progress_reporter(report, source, start):
    """on_frame for a run: `report(source, frames of the file done)`, at most every REPORT_SECONDS."""
    if report is None:
        return None
    last = 0.0

    def on_frame(frames):
        nonlocal last
        if time.monotonic() - last >= REPORT_SECONDS:
            last = time.monotonic()
            report(str(source), start + frames)
    return on_frame


def analyze_one(analyzer, source, csv_path, report=None):
    """Read `source` into `csv_path`, renamed into place only when the source was read to its end; a
    video stopped in keeps what was read, and the next call goes on from there. `report(source,
    frames)`: progress inside the file."""
    from emotion_analyzer.analysis.analyzer import RunOutputs

    partial, record = partial_paths(csv_path)
    before = file_state(source)
    kept = kept_work(source, csv_path, analyzer.settings) if before and record.is_file() else None
    start, kept_faces, first_id = kept or (0, 0, 1)
    outputs = RunOutputs(csv=partial, display=False, progress=False, summary_plot=False, start_frame=start,
                         first_face_id=first_id, csv_continues=kept is not None,
                         on_frame=progress_reporter(report, source, start))
    try:
        stats = analyzer.run(str(source), outputs)
    except UserError as exc:
        return FileResult(str(source), error=str(exc))
    if stats.interrupted:
        if before and start + stats.frames and partial.is_file():
            keep_work(csv_path, before, analyzer.settings, start + stats.frames)
        else:
            discard_work(csv_path)
        raise KeyboardInterrupt(stats.interrupted)
    if file_state(source) != before:  # a video still being recorded: its CSV would be short
        discard_work(csv_path)
        return FileResult(str(source), error=f"{printable(source)} changed while it was read (still being"
                                             " recorded?); run again once it is complete")
    partial.replace(csv_path)
    record.unlink(missing_ok=True)
    return FileResult(str(source), start + stats.frames, kept_faces + stats.faces, warning=stats.ended_early)


def table_of(analyzer, source, report=None):
    """(source, every face of every frame of it as analyze_video's DataFrame), its `source` column the
    path as given (two folders may hold videos of the same name)."""
    from emotion_analyzer.analysis.analyzer import RunOutputs
    from emotion_analyzer.analysis.outputs import RowTable

    table = RowTable(analyzer.labels)
    stats = analyzer.run(str(source), RunOutputs(table=table, display=False, progress=False,
                                                 on_frame=progress_reporter(report, source, 0)))
    if stats.interrupted:
        raise KeyboardInterrupt(stats.interrupted)
    rows = table.to_dataframe()
    rows["source"] = str(source)
    return str(source), rows
