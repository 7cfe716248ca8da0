"""Finding faces: OpenCV's Haar cascades and their settings for videos (fast) and photos (thorough)."""

from dataclasses import dataclass

import cv2
import numpy as np

from emotion_analyzer.errors import UserError

CASCADE_FILE = "haarcascade_frontalface_default.xml"


def load_cascade(path=None):
    """A face cascade loaded once and checked: a file path, or the name of one that opencv-python 4.x
    ships (the frontal-face default when None)."""
    path = str(path or CASCADE_FILE)
    if "/" not in path and "\\" not in path:
        data = getattr(cv2, "data", None)
        if data is None or not hasattr(cv2, "CascadeClassifier"):
            raise UserError("this OpenCV has no Haar cascades (OpenCV 5 dropped them):"
                            " pip install 'opencv-python>=4.8,<5'")
        path = f"{data.haarcascades}{path}"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise UserError(f"cannot load the face cascade {path}: reinstall opencv-python (4.x)")
    return cascade


@dataclass(frozen=True)
class DetectorSettings:
    scale_factor: float = 1.15
    min_neighbors: int = 5
    min_size: int = 48          # smallest face, in pixels of the original frame
    detect_width: int = 320     # frames wider than this are shrunk before detection; 0 = full resolution
    fallback: str | None = None  # a second cascade tried when the first finds no face
    relative_neighbors: float = 0.0  # drop faces with fewer neighbours than this share of the strongest face's


# Photos have no frame budget: finer scale steps, and a second cascade (trained on other faces) when
# the first finds none. At these steps a real face gathers 46-233 neighbouring detections in the
# London portraits and the false ones (chins, collars) 6-18, so a face needs a fifth of the strongest
# one's. Chosen on real photos (docs/real_faces.md). Photos wider than STILL_DETECT_WIDTH are searched
# shrunk to it: a face in a large photo is large too, and at full size an 8000x8000 portrait took
# 9.6 s and 2.65 GB and gave two false faces beside the real one.
STILL_DETECT_WIDTH = 1280
STILL_DETECTOR = DetectorSettings(scale_factor=1.05, min_neighbors=5, min_size=48, detect_width=STILL_DETECT_WIDTH,
                                  fallback="haarcascade_frontalface_alt2.xml", relative_neighbors=0.2)


class FaceDetector:
    """Haar detection on a grayscale frame, downscaled to detect_width; boxes in original-frame pixels."""

    def __init__(self, settings=None, cascade=None):
        self.settings = settings or DetectorSettings()
        if self.settings.scale_factor <= 1:
            raise UserError(f"--scale-factor {self.settings.scale_factor}: must be above 1, such as 1.1")
        if self.settings.min_neighbors < 0 or self.settings.min_size < 1 or 0 < self.settings.detect_width < 32:
            raise UserError("--min-neighbors must be >= 0, --min-size >= 1 and --detect-width 0 (full) or >= 32")
        self.cascade = cascade or load_cascade()
        self.fallback = load_cascade(self.settings.fallback) if self.settings.fallback else None

    def detect(self, gray):
        """(N, 4) int array of x, y, w, h, left to right: the first cascade's faces, else the fallback's."""
        boxes = self._detect_with(self.cascade, gray)
        if len(boxes) == 0 and self.fallback is not None:
            boxes = self._detect_with(self.fallback, gray)
        # The cascade's threads return faces in any order; in order, results and new face ids are repeatable.
        return boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))]

    def _detect_with(self, cascade, gray):
        height, width = gray.shape[:2]
        wanted = self.settings.detect_width or width
        scale = min(1.0, wanted / width)
        small = gray if scale == 1.0 else cv2.resize(gray, (round(width * scale), round(height * scale)),
                                                     interpolation=cv2.INTER_AREA)
        min_side = max(12, round(self.settings.min_size * scale))
        boxes, neighbours = cascade.detectMultiScale2(small, scaleFactor=self.settings.scale_factor,
                                                      minNeighbors=self.settings.min_neighbors,
                                                      minSize=(min_side, min_side))
        if len(boxes) and self.settings.relative_neighbors:
            neighbours = np.asarray(neighbours).ravel()
            boxes = np.asarray(boxes)[neighbours >= self.settings.relative_neighbors * neighbours.max()]
        if len(boxes) == 0:
            return np.zeros((0, 4), dtype=np.int32)
        return np.round(np.asarray(boxes, dtype=np.float64) / scale).astype(np.int32)


def cascade_from_flag(text):
    """A --fallback-cascade value: a cascade name or path, or None for 'none'."""
    return None if text is None or str(text).lower() == "none" else text
