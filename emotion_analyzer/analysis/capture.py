"""Frame sources (webcam, video file, stream URL, image, image folder) read on a background thread.

The reader thread owns the VideoCapture. For a camera (or --realtime) it keeps only the newest frame
in a lock-guarded slot with a sequence number, so the main loop never waits on camera I/O and never
sees a stale frame. For files it hands frames over through a two-slot buffer, so the next frame is
decoded while the current one is processed and no frame is dropped.
"""

import contextlib
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotion_analyzer.common.fileio import is_utf8, printable
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.images import BadImage, image_files_under, is_image_name, photo_name, read_image_file

DEFAULT_FPS = 30.0


@dataclass
class Frame:
    index: int          # position in the source (frames that failed to decode keep their number)
    time_s: float       # video time for files, wall-clock seconds since start for live sources
    image: np.ndarray   # as decoded: gray, BGR or BGRA
    name: str           # file name for images, the source otherwise


def parse_source(text):
    """('camera', index) / ('folder', path) / ('image', path) / ('video', path) / ('stream', url)."""
    text = str(text)
    if text.isdigit():
        return "camera", int(text)
    if "://" in text:
        return "stream", text
    path = Path(text)
    if path.is_dir():
        return "folder", path
    if not path.exists():
        raise UserError(f"source {text!r} not found: pass a webcam index (0), a video or image file, a folder"
                        " of images, or a stream URL")
    return ("image" if is_image_name(path) else "video"), path


class Reader:
    """What ThreadedCapture reads from: `read()` gives (index, image, name) until it gives None at the
    end; `why_ended()` says then whether the source ended before it should have."""
    fps = DEFAULT_FPS
    frame_count = None      # frames the source announces, when it does
    position = 0            # frames read so far

    def __init__(self):
        self.skipped = []   # (path, reason) of files that could not be read

    def read(self):
        raise NotImplementedError

    def skip(self, frames):
        """Pass over the next `frames` frames unread (a folder run going on where it stopped)."""
        while self.position < frames and self.read() is not None:
            pass

    def why_ended(self):
        """Why the source ended early (cut short, damaged), or None when it simply ended."""
        return None

    def time_of(self, index):
        """Seconds into the source of the frame `read()` just gave (its position at the frame rate)."""
        return index / self.fps

    def release(self):
        pass


class ImageFiles(Reader):
    """An image or a folder of images as a frame sequence; unreadable files are counted and skipped."""

    fps = 1.0

    def __init__(self, paths, root=None):
        super().__init__()
        self.paths = list(paths)
        self.root = root  # a photo's name is its path under the folder (happy/001.jpg), else its file name
        self.frame_count = len(self.paths)

    @classmethod
    def from_folder(cls, folder):
        paths = image_files_under(folder)
        if not paths:
            raise UserError(f"no images in {folder} or its subfolders: expected .jpg/.png files")
        return cls(paths, Path(folder))

    def name_of(self, path):
        return photo_name(path, self.root)

    def skip(self, frames):
        self.position = min(frames, len(self.paths))

    def read(self):
        """The next image as (index, image, name), the image None for a file that cannot be read (its
        reason in `skipped`), or None at the end."""
        if self.position >= len(self.paths):
            return None
        index, path = self.position, self.paths[self.position]
        self.position += 1
        try:
            return index, read_image_file(path), self.name_of(path)
        except BadImage as exc:
            self.skipped.append((path, str(exc)))
            return index, None, self.name_of(path)


class VideoStream(Reader):
    """A cv2.VideoCapture over a camera, file or URL, opened and checked."""

    def __init__(self, kind, target):
        super().__init__()
        self.kind = kind
        if kind == "camera":
            self.name = f"camera {target}"
        else:
            self.name = printable(Path(str(target)).name if kind == "video" else target)
        self._alias = None  # a folder holding a UTF-8 named link to a video whose name is not UTF-8
        named = target
        if kind == "video" and not is_utf8(target):
            # OpenCV takes file names as UTF-8 text and crashes on one that is not (a Latin-1 name)
            self._alias = tempfile.TemporaryDirectory(prefix="emotion-analyzer-")
            link = Path(self._alias.name) / ("video" + printable(Path(target).suffix))
            link.symlink_to(Path(target).absolute())
            target = link
        with opencv_log_silenced():  # backends tried in turn each log their failure before ours says it once
            self.capture = cv2.VideoCapture(str(target) if kind == "video" else target)
        self._first = None  # a video's first frame, decoded at open to check the file
        self._time_s = None  # the timestamp of the frame read last, in seconds
        if self.capture.isOpened() and kind == "video":
            ok, image = self.capture.read()
            self._first = image if ok and image is not None else None
            self._first_time_s = self._stamp()
        if not self.capture.isOpened() or (kind == "video" and self._first is None):
            self.release()
            raise UserError(self._open_error(named if kind == "camera" else printable(named)))
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 1 <= fps <= 240 else DEFAULT_FPS
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else 0
        self.frame_count = count if count > 0 else None

    def _open_error(self, target):
        if self.kind == "camera":
            return (f"cannot open camera {target}: no webcam there, or another program uses it; read a photo or a"
                    f" video instead (--source FILE), or try another camera (--source {target + 1})")
        if self.kind == "video":
            return (f"cannot decode video {target}: not a video OpenCV can read, or cut short or damaged;"
                    " re-encode it (for example `ffmpeg -i INPUT out.mp4`) or pass another file")
        return f"cannot open stream {target}: check the URL and that the stream is live"

    def _stamp(self):
        """The timestamp of the frame just decoded, as the file records it (None if it records none)."""
        if self.kind != "video":
            return None
        milliseconds = self.capture.get(cv2.CAP_PROP_POS_MSEC)
        return milliseconds / 1000 if milliseconds == milliseconds and milliseconds >= 0 else None

    def time_of(self, index):
        """The frame's own timestamp: phones record variable frame rates, where a frame's index over the
        average rate can be seconds off."""
        return self._time_s if self._time_s is not None else index / self.fps

    def skip(self, frames):
        """Pass over frames without converting them: grab() alone decodes, which is what a frame-exact
        position needs (seeking by frame number is not exact in variable-frame-rate files)."""
        if self.position < frames and self._first is not None:
            self._first = None
            self.position += 1
        while self.position < frames and self.capture.grab():
            self.position += 1

    def read(self):
        image, self._first = self._first, None
        if image is not None:
            self._time_s = self._first_time_s
        else:
            ok, image = self.capture.read()
            if not ok or image is None:
                return None
            self._time_s = self._stamp()
        index = self.position
        self.position += 1
        return index, image, self.name

    def why_ended(self):
        if self.kind == "video" and self.frame_count and self.position < self.frame_count:
            return (f"the video ended after {self.position:,} of the {self.frame_count:,} frames its header"
                    " announces (cut short or damaged)")
        return None

    def release(self):
        self.capture.release()  # safe to call twice
        if self._alias is not None:
            self._alias.cleanup()
            self._alias = None


@contextlib.contextmanager
def opencv_log_silenced():
    """OpenCV's own log (V4L, FFMPEG, obsensor warnings) off inside the block, and FFmpeg's ("moov atom
    not found") from then on: OpenCV sets FFmpeg's level from this variable when it first opens a file,
    and what FFmpeg would say, the analyzer says in one line of its own."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def open_source(text):
    kind, target = parse_source(text)
    if kind == "folder":
        return kind, ImageFiles.from_folder(target)
    if kind == "image":
        return kind, ImageFiles([target])
    return kind, VideoStream(kind, target)


class ThreadedCapture:
    """Reads a source on its own thread. `latest_only` keeps just the newest frame (cameras)."""

    def __init__(self, reader, latest_only, live_clock):
        self.reader = reader
        self.latest_only = latest_only
        self.live_clock = live_clock
        self.stopped = threading.Event()
        self.finished = threading.Event()   # the source has no more frames
        self.error = None                   # why the source ended early, if it did
        self._lock = threading.Condition()
        self._newest = None                 # (sequence, Frame) in latest_only mode
        self._sequence = 0
        self._taken = 0                     # sequence number of the last frame handed out
        self._handed_out = 0
        self._buffer = queue.Queue(maxsize=2)
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        # A reader blocked in read() on a stalled stream must not have its source released under it:
        # close() then leaves the release to the thread, whichever of the two gets there last.
        self._release_lock = threading.Lock()
        self._thread_done = False
        self._thread_releases = False

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self):
        try:
            while not self.stopped.is_set():
                item = self.reader.read()
                if item is None:
                    self.error = self._why_it_ended()
                    break
                index, image, name = item
                stamp = time.monotonic() - self._started if self.live_clock else self.reader.time_of(index)
                if self.latest_only and not self.live_clock:
                    self._wait_until(stamp)  # a file played like a camera delivers at its own frame rate
                self._publish(Frame(index, stamp, image, name))
        except cv2.error as exc:
            self.error = f"reading failed: {exc}"
        finally:
            self.finished.set()
            with self._lock:
                self._lock.notify_all()
            if not self.latest_only:
                self._put_blocking(None)
            with self._release_lock:
                self._thread_done = True
                if self._thread_releases:
                    self.reader.release()

    def _why_it_ended(self):
        """Why the source ended, when it ended before it should have; None otherwise."""
        if self.live_clock:
            if self._sequence == 0:
                return "the source delivered no frame"
            return f"the source stopped delivering frames after {self._sequence:,}"
        return self.reader.why_ended()

    def _wait_until(self, stamp):
        delay = stamp - (time.monotonic() - self._started)
        if delay > 0:
            self.stopped.wait(delay)

    def _publish(self, frame):
        self._sequence += 1
        if self.latest_only:
            with self._lock:
                self._newest = (self._sequence, frame)
                self._lock.notify_all()
        else:
            self._put_blocking(frame)

    def _put_blocking(self, item):
        while not self.stopped.is_set():
            try:
                self._buffer.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next_frame(self, timeout=5.0):
        """The next frame to process, or None when the source is done (or stopped)."""
        if not self.latest_only:
            try:
                return self._buffer.get(timeout=timeout)
            except queue.Empty:
                self.error = self.error or f"no frame arrived within {timeout:.0f} s"
                return None
        with self._lock:
            deadline = time.monotonic() + timeout
            while (self._newest is None or self._newest[0] <= self._taken) and not self.finished.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.error = self.error or f"no new frame within {timeout:.0f} s"
                    return None
                self._lock.wait(remaining)
            if self._newest is None or self._newest[0] <= self._taken:
                return None
            self._taken, frame = self._newest
            self._handed_out += 1
            return frame

    @property
    def dropped(self):
        """Frames the reader delivered that the main loop never took (live sources only)."""
        return self._sequence - self._handed_out if self.latest_only else 0

    def close(self, timeout=5.0):
        """Stop the reader thread and release the source (idempotent)."""
        self.stopped.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=timeout)
        with self._release_lock:
            if self._thread.ident is not None and not self._thread_done:
                self._thread_releases = True  # still blocked in read(): it releases when read() returns
                return
        self.reader.release()
