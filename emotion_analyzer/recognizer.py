"""The library API: the analyzer's reading of faces, called from Python.

    from emotion_analyzer import EmotionRecognizer
    recognizer = EmotionRecognizer()                     # the shipped model; EmotionRecognizer(model="my.keras")
    faces = recognizer.detect_emotions("photo.jpg")      # or a BGR array as cv2.imread gives, or a list of them
    table = recognizer.analyze_video("clip.mp4")         # a pandas DataFrame, one row per face per frame

Everything goes through analyze.Analyzer, the code `analyzer.py` runs: the same detector settings (thorough
for photos, fast for videos), framing, test-time views and smoothing, so the API and the command give the
same boxes and probabilities. Problems raise UserError with the message the command prints.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np

from emotion_analyzer import config
from emotion_analyzer.errors import UserError
from emotion_analyzer.images import BadImage, decode_image_bytes
from emotion_analyzer.results import RowTable
from emotion_analyzer.stats import RunStats


# The analyzer's options that belong to one run of the command (given per call here, or not at all).
COMMAND_ONLY_OPTIONS = {"source", "model", "output", "csv", "display", "realtime", "max_frames", "snapshot_dir",
                        "progress"}


def read_image(path):
    """An image file as the analyzer decodes it (EXIF orientation applied), or a UserError naming it."""
    path = Path(path)
    try:
        return decode_image_bytes(path, path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: no such image file") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder: give detect_emotions an image or a list of them,"
                        " or analyze_video the folder") from None
    except BadImage as exc:
        raise UserError(f"{path}: {exc}") from None


def as_image(image):
    """A path or a decoded array (gray, BGR or BGRA as OpenCV gives) as an array."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, np.ndarray) and image.size and (image.ndim == 2 or (image.ndim == 3
                                                                            and image.shape[2] in (1, 3, 4))):
        return image
    shape = getattr(image, "shape", None)
    raise UserError(f"expected an image path or an array as cv2.imread gives (height x width, gray, BGR or"
                    f" BGRA), got {type(image).__name__}" + (f" of shape {shape}" if shape is not None else ""))


def face_result(labels, box, probabilities):
    """One face as detect_emotions gives it: box, every emotion's probability, the top one and its probability."""
    top = int(np.argmax(probabilities))
    return {"box": tuple(int(v) for v in box),
            "emotions": {label: float(p) for label, p in zip(labels, probabilities)},
            "emotion": labels[top], "confidence": float(probabilities[top])}


class EmotionRecognizer:
    """Reads the emotion on every face of photos and videos with a trained model.

    `model`: a .keras file from training.py (its .json beside it), default the shipped model. The other
    settings are analyze.AnalyzerOptions' (the analyzer's options), default the analyzer's defaults:
    `tta` (views per face: "none", "flip", "shifts"), `engine` (one of classify.ENGINES), `framing`,
    `smoothing` (for videos; None for each frame as it comes), `detect_every`, `follow` (move boxes with
    the faces between detections), `detector` (videos) and `still_detector` (photos). `verbose` prints
    what the analyzer prints and shows a progress bar. The model is loaded once, here; nothing happens at
    import.
    """

    def __init__(self, model=None, verbose=False, **settings):
        from emotion_analyzer.analyze import Analyzer, AnalyzerOptions
        from emotion_analyzer.device import start_tensorflow

        known = set(AnalyzerOptions.__dataclass_fields__) - COMMAND_ONLY_OPTIONS
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"EmotionRecognizer() got unknown setting(s) {', '.join(unknown)};"
                            f" expected some of {', '.join(sorted(known))}")
        start_tensorflow()
        options = AnalyzerOptions(model=Path(model or config.DEFAULT_MODEL_PATH), display=False, progress=verbose,
                                  **settings)
        # Photo settings first; a video's are built by its first analyze_video.
        self._analyzer = Analyzer(options, log=print if verbose else _silent, still=True)
        self.labels = list(self._analyzer.labels)

    def detect_emotions(self, image):
        """The faces in a photo, as a list of {"box": (x, y, w, h), "emotions": {label: probability},
        "emotion": top label, "confidence": its probability}.

        `image`: a path, or an array as cv2.imread gives (BGR, BGRA or gray). Given a list of them, returns a
        list of such lists, and the faces of all the photos are classified in one call.
        """
        batch = isinstance(image, (list, tuple))
        images = [as_image(item) for item in (image if batch else [image])]
        self._analyzer.use_settings_for(still=True)
        faces = self._analyzer.read_photos(images, RunStats())
        results = [[face_result(self.labels, box, probs) for box, probs in photo] for photo in faces]
        return results if batch else results[0]

    def analyze_video(self, source, max_frames=None):
        """Every face of every frame of a video file (or a camera index, stream URL, image or folder of
        images), as a pandas DataFrame with the columns of analyzer.py's --csv: source, frame, time_s,
        face, x, y, w, h, a column per emotion, and the emotion shown (the steady label).

        Every frame of a file is read; a camera or stream runs until `max_frames` (or Ctrl-C, which is
        raised again once the frames read so far are put away).
        """
        analyzer = self._analyzer
        if max_frames is not None and max_frames < 1:
            raise UserError(f"max_frames {max_frames}: expected a positive number")
        analyzer.options = replace(analyzer.options, max_frames=max_frames)
        table = RowTable(self.labels)
        stats = analyzer.run(source=str(source), rows=table)
        if stats.interrupted:
            raise KeyboardInterrupt(stats.interrupted)
        return table.to_dataframe()


def _silent(*_):
    pass
