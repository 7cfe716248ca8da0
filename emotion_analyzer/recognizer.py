"""The library API: the analyzer's reading of faces, called from Python.

    from emotion_analyzer import EmotionRecognizer
    recognizer = EmotionRecognizer()                     # the shipped model; EmotionRecognizer(model="my.keras")
    faces = recognizer.detect_emotions("photo.jpg")      # or a BGR array as cv2.imread gives, or a list of them
    drawn = recognizer.draw_emotions("photo.jpg")        # the photo with its faces drawn, as --output draws it
    table = recognizer.analyze_video("clip.mp4")         # a pandas DataFrame, one row per face per frame

Everything goes through analyze.Analyzer, the code `analyzer.py` runs: the same detector settings (thorough
for photos, fast for videos), framing, test-time views and smoothing, so the API and the command give the
same boxes and probabilities. Problems raise UserError with the message the command prints.
"""

import numbers
import threading
import warnings
from pathlib import Path

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.common.cli import silent
from emotion_analyzer.common.stops import Stopped
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.images import BadImage, read_image_file, unreadable_pixels
from emotion_analyzer.analysis.outputs import face_result, RowTable


def read_image(path):
    """An image file as the analyzer decodes it (EXIF orientation applied), or a UserError naming it."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder: give detect_emotions an image or a list of them,"
                        " or analyze_video the folder")
    try:
        return read_image_file(path)
    except BadImage as exc:
        raise UserError(f"{path}: {exc}") from None


def as_image(image):
    """A path or a decoded array (gray, BGR or BGRA as OpenCV gives) as an array."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, np.ndarray) and image.size and (image.ndim == 2 or (image.ndim == 3
                                                                            and image.shape[2] in (1, 3, 4))):
        why = unreadable_pixels(image)
        if why:
            raise UserError(f"image array of shape {image.shape}: {why}")
        return image
    shape = getattr(image, "shape", None)
    raise UserError(f"expected an image path or an array as cv2.imread gives (height x width, gray, BGR or"
                    f" BGRA), got {type(image).__name__}" + (f" of shape {shape}" if shape is not None else ""))


class AnalysisStopped(Stopped):
    """analyze_video stopped by Ctrl-C, SIGTERM or SIGHUP: `rows` holds the faces read until then (a
    DataFrame as analyze_video returns), `signum` the signal; a stops.Stopped, so a KeyboardInterrupt."""

    def __init__(self, signum, rows):
        super().__init__(signum)
        self.rows = rows


class EmotionRecognizer:
    """Reads the emotion on every face of photos and videos with a trained model.

    `model`: a .keras file from training.py (its .json beside it), default the shipped model. The other
    settings are AnalyzerSettings' fields (analysis/analyzer.py; `python analyzer.py --set help` lists
    them with their defaults and what each does), default the analyzer's; a wrong name raises TypeError.
    `verbose` prints what the analyzer prints and shows a progress bar. The model is loaded once, here;
    nothing happens at import.

    One recognizer may be shared by threads (a web service, a batch runner): its calls take turns, since
    the detector, the TensorFlow Lite interpreter and the faces followed in a video each hold state.
    The CNN and the cascade already use both cores within a call, so turns cost little throughput; a
    recognizer per thread runs calls side by side at the price of a model in memory each.
    """

    def __init__(self, model=None, verbose=False, **settings):
        from emotion_analyzer.analysis.analyzer import Analyzer, AnalyzerSettings

        settings = AnalyzerSettings(model=Path(model or config.DEFAULT_MODEL_PATH), **settings)
        self._analyzer = Analyzer(settings, log=print if verbose else silent, warn=silent)  # warnings.warn instead
        self._verbose = verbose
        self._turn = threading.Lock()
        self.labels = list(self._analyzer.labels)

    def detect_emotions(self, image):
        """The faces in a photo, as a list of {"box": (x, y, w, h), "emotions": {label: probability},
        "emotion": top label, "confidence": its probability}.

        `image`: a path, or an array as cv2.imread gives (BGR, BGRA or gray). Given a list of them, returns a
        list of such lists, and the faces of all the photos are classified in one call.
        """
        batch = isinstance(image, (list, tuple))
        images = [as_image(item) for item in (image if batch else [image])]
        with self._turn:
            faces = self._analyzer.read_photos(images)
        results = [[face_result(self.labels, face) for face in photo] for photo in faces]
        return results if batch else results[0]

    def draw_emotions(self, image):
        """A BGR copy of the photo `image` (a path or an array, as detect_emotions takes) with every face's
        box, emotion, confidence and bars drawn on it, as analyzer.py --output draws a photo."""
        image = as_image(image)
        with self._turn:
            faces = self._analyzer.read_photos([image])[0]
            return self._analyzer.draw(image, faces)

    def analyze_video(self, source, max_frames=None):
        """Every face of every frame of a video file (or a camera index, stream URL, image or folder of
        images), as a pandas DataFrame with the columns of analyzer.py's --csv: source, frame, time_s,
        face, x, y, w, h, a column per emotion, and the emotion shown (the steady label).

        Every frame of a file is read; a camera or stream runs until `max_frames`. A video that ends
        before the frames its header announces (cut short, damaged) gives the rows read, a warning, and
        `table.attrs["ended_early"]` saying why (None when the video was read whole). Ctrl-C, SIGTERM or
        SIGHUP raise AnalysisStopped, a KeyboardInterrupt whose `rows` are the faces read until then.
        """
        from emotion_analyzer.analysis.analyzer import RunOutputs

        table = RowTable(self.labels)
        outputs = RunOutputs(table=table, display=False, progress=self._verbose,
                             max_frames=max_frames)
        with self._turn:
            stats = self._analyzer.run(str(source), outputs)
        rows = table.to_dataframe()
        rows.attrs["ended_early"] = stats.ended_early
        if stats.interrupted:
            raise AnalysisStopped(stats.exit_code - 128, rows)
        if stats.ended_early:
            warnings.warn(f"{source}: {stats.ended_early}; the table holds the {len(rows):,} rows read",
                          RuntimeWarning, stacklevel=2)
        return rows


    def analyze_videos(self, sources, workers=1):
        """analyze_video for each of `sources` (paths), as one DataFrame whose `source` column is each
        path as given: one table filters by source in a line, and keeps its column types (a frame per
        file would leave the caller to concatenate them). With `workers` > 1 the files are shared among
        that many processes, each loading the model once; this recognizer's settings go with them (in a
        script, call it under `if __name__ == "__main__":`, as any process pool needs). A file that
        cannot be read raises UserError naming it."""
        import pandas as pd

        from emotion_analyzer.scale.folder import each_result
        from emotion_analyzer.scale.files import table_of

        sources = [str(source) for source in sources]
        if not isinstance(workers, numbers.Integral) or isinstance(workers, bool) or workers < 1:
            raise UserError(f"workers {workers!r}: expected a whole number of at least 1")
        with self._turn:
            tables = dict(each_result(table_of, [(source,) for source in sources], self._analyzer.settings,
                                      workers, self._analyzer))
        in_order = [tables[source] for source in dict.fromkeys(sources)]  # as given, whoever finished first
        return pd.concat(in_order, ignore_index=True) if in_order else RowTable(self.labels).to_dataframe()
