"""Face detection with OpenCV's Haar cascade, following faces from frame to frame, and cutting out
the crops the CNN reads."""

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from emotion_analyzer import config
from emotion_analyzer.errors import UserError
from emotion_analyzer.images import to_model_input

CASCADE_FILE = "haarcascade_frontalface_default.xml"


def load_cascade(path=None):
    """The frontal-face cascade shipped in opencv-python 4.x, loaded once and checked."""
    if path is None:
        data = getattr(cv2, "data", None)
        if data is None or not hasattr(cv2, "CascadeClassifier"):
            raise UserError("this OpenCV has no Haar cascades (OpenCV 5 dropped them):"
                            " pip install 'opencv-python>=4.8,<5'")
        path = f"{data.haarcascades}{CASCADE_FILE}"
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise UserError(f"cannot load the face cascade {path}: reinstall opencv-python (4.x)")
    return cascade


@dataclass
class DetectorSettings:
    scale_factor: float = 1.15
    min_neighbors: int = 5
    min_size: int = 48          # smallest face, in pixels of the original frame
    detect_width: int = 320     # frames wider than this are shrunk before detection


class FaceDetector:
    """Haar detection on a grayscale frame, downscaled to --detect-width; boxes in original-frame pixels."""

    def __init__(self, settings=None, cascade=None):
        self.settings = settings or DetectorSettings()
        if self.settings.scale_factor <= 1:
            raise UserError(f"--scale-factor {self.settings.scale_factor}: must be above 1, such as 1.1")
        if self.settings.min_neighbors < 0 or self.settings.min_size < 1 or self.settings.detect_width < 32:
            raise UserError("--min-neighbors must be >= 0, --min-size >= 1 and --detect-width >= 32")
        self.cascade = cascade or load_cascade()

    def detect(self, gray):
        """(N, 4) int array of x, y, w, h."""
        height, width = gray.shape[:2]
        scale = min(1.0, self.settings.detect_width / width)
        small = gray if scale == 1.0 else cv2.resize(gray, (round(width * scale), round(height * scale)),
                                                     interpolation=cv2.INTER_AREA)
        min_side = max(12, round(self.settings.min_size * scale))
        boxes = self.cascade.detectMultiScale(small, scaleFactor=self.settings.scale_factor,
                                              minNeighbors=self.settings.min_neighbors,
                                              minSize=(min_side, min_side))
        if len(boxes) == 0:
            return np.zeros((0, 4), dtype=np.int32)
        return np.round(np.asarray(boxes, dtype=np.float64) / scale).astype(np.int32)


def clamp_box(box, width, height):
    """The part of a box inside the frame (faces cut by the edge), or None if nothing is left."""
    x, y, w, h = (int(v) for v in box)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1 - x0, y1 - y0


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


@dataclass
class Track:
    face_id: int
    box: tuple
    history: deque = field(default_factory=deque)
    missed: int = 0

    def smoothed(self):
        return np.mean(self.history, axis=0)


class FaceTracker:
    """Follows faces by box overlap, so each keeps an id and a short window of probabilities."""

    def __init__(self, window=5, min_iou=0.3, max_missed=2):
        self.window = max(1, window)
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks = []
        self._next_id = 1

    def update(self, boxes):
        """Match new detections to tracks (greedy by overlap); return the live tracks in box order."""
        pairs = sorted(((iou(t.box, tuple(b)), ti, bi) for ti, t in enumerate(self.tracks)
                        for bi, b in enumerate(boxes)), reverse=True)
        matched_tracks, matched_boxes, assignment = set(), set(), {}
        for overlap, ti, bi in pairs:
            if overlap < self.min_iou or ti in matched_tracks or bi in matched_boxes:
                continue
            matched_tracks.add(ti)
            matched_boxes.add(bi)
            assignment[bi] = self.tracks[ti]
        survivors = []
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.missed += 1
                if track.missed <= self.max_missed:
                    survivors.append(track)
        current = []
        for bi, box in enumerate(boxes):
            track = assignment.get(bi)
            if track is None:
                track = Track(self._next_id, tuple(int(v) for v in box), deque(maxlen=self.window))
                self._next_id += 1
            track.box, track.missed = tuple(int(v) for v in box), 0
            current.append(track)
        # Faces missed for a frame or two keep their history but are not drawn until seen again.
        self.tracks = current + [t for t in survivors if t not in current]
        return current

    def add_probabilities(self, tracks, probabilities):
        for track, probs in zip(tracks, probabilities):
            track.history.append(np.asarray(probs, dtype=np.float32))
        return np.array([t.smoothed() for t in tracks]) if tracks else np.zeros((0, 0), np.float32)


def crop_faces(gray, boxes):
    """(N, 48, 48, 1) uint8 crops of the boxes clamped to the frame (faces cut by the edge), with
    the indices of the boxes used and the clamped boxes; boxes wholly outside the frame are left out."""
    height, width = gray.shape[:2]
    crops, used, clamped_boxes = [], [], []
    for index, box in enumerate(boxes):
        clamped = clamp_box(box, width, height)
        if clamped is None:
            continue
        x, y, w, h = clamped
        crops.append(to_model_input(gray[y:y + h, x:x + w]))
        used.append(index)
        clamped_boxes.append(clamped)
    size = config.IMAGE_SIZE
    batch = np.stack(crops)[..., np.newaxis] if crops else np.zeros((0, size, size, 1), np.uint8)
    return batch, used, clamped_boxes
