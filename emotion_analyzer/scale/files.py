"""One file of a folder run: which files a folder holds, and reading one into its CSV (or table) so
that a CSV is there complete or not at all. Shared by the process pool (batch.py) and Ray's actors."""

import csv
from dataclasses import dataclass
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.common.fileio import printable, spreadsheet_safe
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.images import files_under, image_files_under, is_image_name, photo_name

PHOTOS_CSV = "photos.csv"  # the photos directly under the folder, as one set


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


def analyze_one(analyzer, source, csv_path):
    """Read `source` into `csv_path`, renamed into place only when the source was read to its end."""
    from emotion_analyzer.analysis.analyzer import RunOutputs

    partial = csv_path.with_name(csv_path.name + ".partial")
    before = file_state(source)
    try:
        stats = analyzer.run(str(source), RunOutputs(csv=partial, display=False, progress=False,
                                                     summary_plot=False))
    except UserError as exc:
        return FileResult(str(source), error=str(exc))
    if stats.interrupted:
        partial.unlink(missing_ok=True)
        raise KeyboardInterrupt(stats.interrupted)
    if file_state(source) != before:  # a video still being recorded: its CSV would be short
        partial.unlink(missing_ok=True)
        return FileResult(str(source), error=f"{printable(source)} changed while it was read (still being"
                                             " recorded?); run again once it is complete")
    partial.replace(csv_path)
    return FileResult(str(source), stats.frames, stats.faces, warning=stats.ended_early)


def table_of(analyzer, source):
    """(source, every face of every frame of it as analyze_video's DataFrame), its `source` column the
    path as given (two folders may hold videos of the same name)."""
    from emotion_analyzer.analysis.analyzer import RunOutputs
    from emotion_analyzer.analysis.outputs import RowTable

    table = RowTable(analyzer.labels)
    stats = analyzer.run(str(source), RunOutputs(table=table, display=False, progress=False))
    if stats.interrupted:
        raise KeyboardInterrupt(stats.interrupted)
    rows = table.to_dataframe()
    rows["source"] = str(source)
    return str(source), rows
