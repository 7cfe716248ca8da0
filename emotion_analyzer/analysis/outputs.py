"""Results you can keep: a CSV row per face per frame, the annotated video (or annotated photos), the
photos' faces as JSON, and a summary.

Every file is written under a temporary name and renamed when it is whole (the CSV, video and JSON
when the run ends, however it ends: finished, Ctrl-C, SIGTERM or SIGHUP, camera gone; each annotated
photo as it is drawn), so a file at its final name is always complete and playable.
"""

import contextlib
import csv
import shutil
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from emotion_analyzer.errors import UserError
from emotion_analyzer.common.fileio import (commit_temp, is_utf8, printable, spreadsheet_safe, temp_path_beside,
                                            write_bytes_atomic, write_failed, write_json_atomic)
from emotion_analyzer.common.stops import deferred

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}
# What an annotated photo can be written as (OpenCV's encoders); others are written as .png.
PHOTO_ENDINGS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def result_columns(labels):
    """The columns of a row per face per frame: source, frame, time_s, face, x, y, w, h, a column per
    emotion, emotion (what the window shows: the smoothed probabilities and the label the hysteresis keeps)."""
    return ["source", "frame", "time_s", "face", "x", "y", "w", "h", *labels, "emotion"]


def result_row(labels, frame, face):
    """One FaceReading of a frame (capture.Frame: name, index, time_s) as the values of result_columns()."""
    return [frame.name, frame.index, float(frame.time_s), face.face_id, *(int(v) for v in face.box),
            *(float(p) for p in face.probabilities), labels[face.shown]]


# The emotion of a photo's row when it has no face, or when it could not be read (a folder's every
# photo has a row: what is not named was not there).
NO_FACE = "no face"
UNREADABLE = "unreadable"


def no_face_row(labels, frame, why=NO_FACE):
    """A photo with no face (or that could not be read) as the values of result_columns(): no face, box or
    probabilities."""
    return [frame.name, frame.index, float(frame.time_s), None, None, None, None, None, *([None] * len(labels)), why]


def face_result(labels, face):
    """One FaceReading as the library and the JSON give it: box, every emotion's probability, the label
    shown and its probability."""
    return {"box": tuple(int(v) for v in face.box),
            "emotions": {label: float(p) for label, p in zip(labels, face.probabilities)},
            "emotion": labels[face.shown], "confidence": face.confidence}


def photo_answer(name, faces, labels):
    """One plain line for a photo: 'happy/001.jpg: happy 86%', '... : 2 faces: happy 86%, sad 40%' (left
    to right), or '...: no face'; `faces` its FaceReadings."""
    read = [f"{labels[face.shown]} {face.confidence:.0%}" for face in faces]
    if not read:
        return f"{name}: {NO_FACE}"
    return f"{name}: {read[0]}" if len(read) == 1 else f"{name}: {len(read)} faces: {', '.join(read)}"


class CsvLog:
    """The rows of result_columns() in a CSV file (--csv)."""

    def __init__(self, path, labels, continues=False):
        """`continues`: the CSV at `path` holds earlier rows of the same source, kept and added to."""
        self.path = Path(path)
        self.labels = list(labels)
        self.tmp = temp_path_beside(self.path)
        if continues:
            shutil.copyfile(self.path, self.tmp)
        self.handle = open(self.tmp, "a" if continues else "w", newline="")
        self.writer = csv.writer(self.handle)
        self.failed = False
        if not continues:
            self._guarded(self.writer.writerow, [spreadsheet_safe(column) for column in result_columns(self.labels)])
        self.rows = 0

    def _guarded(self, write, *args):
        """`write`, or on a full disk or a size limit the temporary file gone and one line to say so."""
        try:
            write(*args)
        except OSError as exc:
            self.failed = True
            with contextlib.suppress(OSError):
                self.handle.close()
            self.tmp.unlink(missing_ok=True)
            raise UserError(write_failed(self.path, exc)) from None

    def write(self, frame, face):
        self._write(result_row(self.labels, frame, face))

    def write_no_face(self, frame, why=NO_FACE):
        self._write(no_face_row(self.labels, frame, why))

    def _write(self, row):
        row[2] = f"{row[2]:.3f}"  # time_s to the millisecond; the probabilities to 4 decimals
        row = [f"{value:.4f}" if isinstance(value, float) else spreadsheet_safe(value) for value in row]
        with deferred():  # so the count of rows written is the number in the file
            self._guarded(self.writer.writerow, row)
            self.rows += 1

    def close(self):
        if self.failed:
            return
        self._guarded(self.handle.close)  # the last rows reach the disk here
        commit_temp(self.tmp, self.path)


class RowTable:
    """The rows of result_columns() kept in memory, as a pandas DataFrame (EmotionRecognizer.analyze_video)."""

    def __init__(self, labels):
        self.labels = list(labels)
        self.values = []

    @property
    def rows(self):
        return len(self.values)

    def write(self, frame, face):
        self.values.append(result_row(self.labels, frame, face))

    def write_no_face(self, frame, why=NO_FACE):
        self.values.append(no_face_row(self.labels, frame, why))

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.values, columns=result_columns(self.labels))


class PhotoJson:
    """Each photo's faces as JSON (--json): [{"photo": name, "faces": [face_result, ...]}, ...], a photo
    with no face given "faces": []."""

    def __init__(self, path, labels):
        self.path, self.labels = Path(path), list(labels)
        self.photos = []

    def add(self, frame, faces):
        self.photos.append({"photo": frame.name, "faces": [face_result(self.labels, face) for face in faces]})

    def close(self):
        try:
            write_json_atomic(self.path, self.photos)
        except OSError as exc:
            raise UserError(write_failed(self.path, exc)) from None


def check_annotated_name(path, kind):
    """--output for a source of `kind`: a video name for videos, cameras and streams, a photo name for a
    photo, a folder (not a file name) for a folder of photos; else a UserError saying which."""
    path = Path(path)
    if kind == "image":
        if path.suffix.lower() not in PHOTO_ENDINGS:
            raise UserError(f"--output {path}: a photo is written as a photo; use a name ending in"
                            f" {', '.join(PHOTO_ENDINGS)}")
    elif kind == "folder":
        if path.suffix.lower() in PHOTO_ENDINGS + tuple(VIDEO_CODECS) or path.is_file():
            raise UserError(f"--output {path}: a folder of photos is written into a folder; give a folder name")
    else:
        check_video_name(path)


class PhotoOutput:
    """Annotated photos: one photo (`path` a photo name), or a folder's, each under its name in the
    source folder (`path` a folder); each written whole under its final name as it is drawn."""

    def __init__(self, path, into_folder):
        self.path, self.into_folder = Path(path), into_folder
        self.frames = 0

    def target(self, name):
        if not self.into_folder:
            return self.path
        target = self.path / name
        return target if target.suffix.lower() in PHOTO_ENDINGS else target.with_name(target.name + ".png")

    def write(self, canvas, name):
        target = self.target(name)
        ok, data = cv2.imencode(target.suffix, canvas)
        if not ok:
            raise UserError(f"cannot encode the annotated photo as {target.suffix}: try --output with .png")
        with deferred():  # so the count of photos written is the number on disk
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(target, data.tobytes())
            except OSError as exc:
                raise UserError(write_failed(target, exc)) from None
            self.frames += 1

    def close(self):
        pass


def check_video_name(path):
    """The FourCC codec for a video file name, or a UserError naming the endings we can write."""
    codec = VIDEO_CODECS.get(Path(path).suffix.lower())
    if not is_utf8(path):  # OpenCV takes the name as UTF-8 text and crashes on any other
        raise UserError(f"--output {printable(path)}: OpenCV cannot write a video whose name is not UTF-8"
                        " text; choose another name")
    if codec is None:
        raise UserError(f"--output {path}: use a video file name ending in {', '.join(VIDEO_CODECS)}")
    return codec


class VideoOutput:
    """The annotated frames as a video, at the source's frame rate and the first frame's size."""

    def __init__(self, path, fps):
        self.path = Path(path)
        self.codec, self.fps = check_video_name(path), fps
        self.writer = None
        self.size = None
        self.tmp = None
        self.frames = 0

    def write(self, frame, name=None):
        """Add the annotated `frame` (`name`, the source's, is for PhotoOutput's sake)."""
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            tmp = temp_path_beside(self.path)
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*self.codec), self.fps, self.size)
            if not writer.isOpened():  # kept only once open, so close() never commits an empty file
                writer.release()
                tmp.unlink(missing_ok=True)
                raise UserError(f"cannot write video {self.path}: OpenCV has no {self.codec} encoder; try .avi")
            self.tmp, self.writer = tmp, writer
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)  # image folders mix sizes; a video has one
        with deferred():  # so the count of frames written is the number in the file
            self.writer.write(frame)
            self.frames += 1

    def close(self):
        if self.writer is None:
            return
        self.writer.release()
        commit_temp(self.tmp, self.path)


class Summary:
    """Emotion share per face and over time, from the emotion shown for every face in every frame."""

    def __init__(self, labels, bin_seconds=1.0):
        self.labels = list(labels)
        self.bin_seconds = bin_seconds
        self.per_face = defaultdict(lambda: np.zeros(len(self.labels)))
        self.per_bin = defaultdict(lambda: np.zeros(len(self.labels)))

    def add(self, time_s, face):
        """Count the emotion shown for a face (FaceReading) at `time_s`."""
        self.per_face[face.face_id][face.shown] += 1
        self.per_bin[int(time_s // self.bin_seconds)][face.shown] += 1

    def has_faces(self):
        return bool(self.per_face)

    def face_shares(self):
        return {face: counts / counts.sum() for face, counts in sorted(self.per_face.items())}

    def timeline(self):
        bins = sorted(self.per_bin)
        times = np.array([b * self.bin_seconds for b in bins])
        if bins:
            mix = np.array([self.per_bin[b] / self.per_bin[b].sum() for b in bins])
        else:
            mix = np.zeros((0, len(self.labels)))
        return times, mix

    def overall(self):
        total = sum(self.per_face.values(), np.zeros(len(self.labels)))
        return total / total.sum() if total.sum() else total

    def lines(self, most_faces=10):
        if not self.per_face:
            return ["no faces were found"]
        overall = self.overall()
        lines = ["emotion share over all faces and frames: "
                 + ", ".join(f"{label} {share:.0%}" for label, share in zip(self.labels, overall))]
        shares = self.face_shares()
        for face, share in list(shares.items())[:most_faces]:
            frames = int(self.per_face[face].sum())
            top = int(np.argmax(share))
            lines.append(f"face #{face}: {frames:,} frame(s), mostly {self.labels[top]} ({share[top]:.0%})")
        if len(shares) > most_faces:
            lines.append(f"... and {len(shares) - most_faces:,} more face(s)")
        return lines

    def save_plot(self, path):
        from emotion_analyzer.common.plots import plot_emotion_summary

        shares = self.face_shares()
        if len(shares) > 20:  # a folder of photos has a face per photo: keep the chart readable
            shares = dict(list(shares.items())[:20])
        plot_emotion_summary(shares, self.timeline(), self.labels, path)


class PhotoSummary:
    """What a run of photos read: how many faces read as each emotion, and the photos with no face."""

    def __init__(self, labels):
        self.labels = list(labels)
        self.counts = np.zeros(len(self.labels), np.int64)
        self.photos = self.without_face = 0

    def has_faces(self):
        return bool(self.counts.sum())

    def add_photo(self, faces):
        self.photos += 1
        self.without_face += not faces
        for face in faces:
            self.counts[face.shown] += 1

    def lines(self):
        if not self.photos:
            return ["no photos were read"]
        read = ", ".join(f"{label} {count:,}" for label, count in zip(self.labels, self.counts) if count)
        return [f"{self.photos:,} photo(s), {int(self.counts.sum()):,} face(s)" + (f": {read}" if read else "")
                + f"; no face in {self.without_face:,}"]

    def save_plot(self, path):
        from emotion_analyzer.common.plots import plot_emotion_counts

        plot_emotion_counts(self.counts, self.labels, self.photos, self.without_face, path)
