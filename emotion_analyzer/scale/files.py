"""One file of a folder run: which files a folder holds, and reading one into its CSV (or table) so
that a CSV is there complete or not at all. Shared by the process pool (batch.py) and Ray's actors."""

from dataclasses import dataclass
from pathlib import Path

from emotion_analyzer import config
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.images import image_files_under

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
    """[(source, its CSV)]: every video under `folder` (recursively, hidden files aside) to
    out_dir/<its path under folder>.csv, and the photos under `folder` (subfolders too) to out_dir/photos.csv."""
    folder, out_dir = Path(folder), Path(out_dir)
    videos = sorted(p for p in folder.rglob("*") if p.is_file() and is_video_name(p)
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    jobs = [(video, out_dir / video.relative_to(folder).with_name(video.name + ".csv")) for video in videos]
    if image_files_under(folder):
        jobs.append((folder, out_dir / PHOTOS_CSV))
    return jobs


def analyze_one(analyzer, source, csv_path):
    """Read `source` into `csv_path`, renamed into place only when the source was read to its end."""
    from emotion_analyzer.analysis.analyzer import RunOutputs

    partial = csv_path.with_name(csv_path.name + ".partial")
    try:
        stats = analyzer.run(str(source), RunOutputs(csv=partial, display=False, progress=False,
                                                     summary_plot=False))
    except UserError as exc:
        return FileResult(str(source), error=str(exc))
    if stats.interrupted:
        partial.unlink(missing_ok=True)
        raise KeyboardInterrupt(stats.interrupted)
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
