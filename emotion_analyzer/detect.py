"""Face detection with OpenCV's Haar cascade, following faces from frame to frame, and cutting out
the crops the CNN reads."""

from dataclasses import dataclass, replace

import cv2
import numpy as np

from emotion_analyzer import config
from emotion_analyzer.errors import UserError
from emotion_analyzer.images import to_model_input
from emotion_analyzer.smoothing import LabelSmoother

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


# Photos have no frame budget: finer scale steps at full resolution, and a second cascade
# (trained on other faces) when the first finds none. At these steps a real face gathers 46-233
# neighbouring detections in the London portraits and the false ones (chins, collars) 6-18, so a face
# needs a fifth of the strongest one's. Chosen on real photos (docs/real_faces.md).
STILL_DETECTOR = DetectorSettings(scale_factor=1.05, min_neighbors=5, min_size=48, detect_width=0,
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


# Faces are followed between detections with sparse optical flow (pyramidal Lucas-Kanade) in frames
# shrunk to FLOW_FRAME_WIDTH: up to FLOW_CORNERS corners per face, found in its box when it is detected
# and carried along from frame to frame; the box moves by their median motion.
FLOW_FRAME_WIDTH = 320
FLOW_CORNERS = 12
FLOW_MIN_CORNERS = 4
FLOW_RETURN_PIXELS = 1.0
FLOW_SETTINGS = {"winSize": (11, 11), "maxLevel": 1}


def corners_in(gray, box):
    """(N, 1, 2) float32 corners inside `box` of `gray`, N possibly 0."""
    x, y, w, h = box
    x0, y0 = max(x, 0), max(y, 0)
    patch = gray[y0:max(y + h, 0), x0:max(x + w, 0)]
    if min(patch.shape) < FLOW_MIN_CORNERS:
        return np.zeros((0, 1, 2), np.float32)
    corners = cv2.goodFeaturesToTrack(patch, FLOW_CORNERS, qualityLevel=0.01, minDistance=3)
    if corners is None:
        return np.zeros((0, 1, 2), np.float32)
    return corners + np.array([x0, y0], np.float32)


def follow_corners(previous, current, corners):
    """Where each corner of `previous` is in `current`, and whether it was followed: only corners that lead
    back to where they started (within FLOW_RETURN_PIXELS) count, so a face covered, gone or cut to another
    scene loses its corners and its box stays."""
    moved, found, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None, **FLOW_SETTINGS)
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, moved, None, **FLOW_SETTINGS)
    returned = np.linalg.norm((back - corners).reshape(-1, 2), axis=1) < FLOW_RETURN_PIXELS
    return moved, (found.ravel() == 1) & (found_back.ravel() == 1) & returned


@dataclass
class Track:
    face_id: int
    box: tuple
    smoother: LabelSmoother
    missed: int = 0
    corners: np.ndarray | None = None  # followed since the last detection, in the tracker's flow frame


class FaceTracker:
    """Follows faces by box overlap, so each keeps an id and its own smoothed probabilities and label
    (`smoothing` None: each frame as it comes)."""

    def __init__(self, smoothing=None, min_iou=0.3, max_missed=2):
        self.smoothing = smoothing
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks = []
        self._next_id = 1
        self._flow_frame = None  # the last frame follow() saw, shrunk, and its scale

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
                track = Track(self._next_id, tuple(int(v) for v in box), LabelSmoother(self.smoothing))
                self._next_id += 1
            track.box, track.missed = tuple(int(v) for v in box), 0
            track.corners = None  # found afresh in the detected box
            current.append(track)
        # Faces missed for a frame or two keep their history but are not drawn until seen again.
        self.tracks = current + [t for t in survivors if t not in current]
        return current

    def follow(self, gray):
        """Move the box of every face seen in the last frame given with its motion into this gray frame."""
        scale = min(1.0, FLOW_FRAME_WIDTH / gray.shape[1])
        current = gray if scale == 1.0 else cv2.resize(gray, (round(gray.shape[1] * scale),
                                                              round(gray.shape[0] * scale)),
                                                       interpolation=cv2.INTER_AREA)
        previous, self._flow_frame = self._flow_frame, current
        tracks = [track for track in self.tracks if track.missed == 0]
        if previous is None or previous.shape != current.shape or not tracks:
            return
        for track in tracks:
            if track.corners is None or len(track.corners) < FLOW_MIN_CORNERS:
                track.corners = corners_in(previous, tuple(int(round(v * scale)) for v in track.box))
        counts = [len(track.corners) for track in tracks]
        if not sum(counts):
            return
        # All faces' corners in one call each way: the frames' pyramids are built once.
        corners = np.concatenate([track.corners for track in tracks])
        moved, followed = follow_corners(previous, current, corners)
        motion = (moved - corners).reshape(-1, 2)
        start = 0
        for track, count in zip(tracks, counts):
            part = slice(start, start + count)
            start += count
            good = followed[part]
            track.corners = moved[part][good]
            if good.sum() >= FLOW_MIN_CORNERS:
                dx, dy = np.median(motion[part][good], axis=0) / scale
                x, y, w, h = track.box
                track.box = (int(round(x + dx)), int(round(y + dy)), w, h)

    def add_probabilities(self, tracks, probabilities, time_s):
        """Each track's smoothed probabilities and shown label index after this frame's `probabilities`."""
        return [track.smoother.update(probs, time_s) for track, probs in zip(tracks, probabilities)]


@dataclass(frozen=True)
class Framing:
    """How a detected face box becomes the square crop the CNN reads. A Haar box is tighter than
    FER2013's faces, which show forehead, chin and cheeks: the crop adds `margin` of the box's size on
    each side and moves down by `offset` of its height. `equalize`: the 48x48 crop's histogram is
    equalized, as evenly lit studio and webcam faces have less contrast than FER2013's. Chosen on real
    photos (docs/real_faces.md) and recorded in a trained model's JSON."""
    margin: float = 0.0
    offset: float = 0.0
    equalize: bool = False

    def crop_box(self, box):
        x, y, w, h = box
        side = max(w, h) * (1 + 2 * self.margin)
        centre_x, centre_y = x + w / 2, y + h / 2 + self.offset * h
        return (int(round(centre_x - side / 2)), int(round(centre_y - side / 2)), int(round(side)),
                int(round(side)))


# A tenth of the box more on each side, raised by a twentieth of its height (more forehead), and
# equalized: chosen on the London portraits, each better on both halves of its people (docs/real_faces.md).
DEFAULT_FRAMING = Framing(margin=0.1, offset=-0.05, equalize=True)


def framing_of_model(info):
    """The Framing a model's JSON records; what it leaves out (older models) is DEFAULT_FRAMING's."""
    return replace(DEFAULT_FRAMING, **info.get("framing", {}))


def framing_from_flags(margin, offset, equalize=None):
    """The Framing that --margin, --offset and --equalize/--no-equalize ask for (the rest from
    DEFAULT_FRAMING), or None when none is given, so the model's JSON decides."""
    flags = {"margin": margin, "offset": offset, "equalize": equalize}
    given = {name: value for name, value in flags.items() if value is not None}
    return replace(DEFAULT_FRAMING, **given) if given else None


def cascade_from_flag(text):
    """A --fallback-cascade value: a cascade name or path, or None for 'none'."""
    return None if text is None or str(text).lower() == "none" else text


def square_crop(gray, box):
    """The square `box` of `gray`, the parts outside the frame filled by repeating its edge."""
    x, y, side, _ = box
    height, width = gray.shape[:2]
    pad = max(0, -x, -y, x + side - width, y + side - height)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x, y = x + pad, y + pad
    return gray[y:y + side, x:x + side]


def crop_faces(gray, boxes, framing=DEFAULT_FRAMING):
    """(N, 48, 48, 1) uint8 crops of the boxes as `framing` frames them, with the indices of the boxes
    used and the boxes clamped to the frame (to draw; faces cut by the edge); boxes wholly outside the
    frame are left out."""
    height, width = gray.shape[:2]
    crops, used, clamped_boxes = [], [], []
    for index, box in enumerate(boxes):
        clamped = clamp_box(box, width, height)
        if clamped is None:
            continue
        crop = to_model_input(square_crop(gray, framing.crop_box(box)))
        crops.append(cv2.equalizeHist(crop) if framing.equalize else crop)
        used.append(index)
        clamped_boxes.append(clamped)
    size = config.IMAGE_SIZE
    batch = np.stack(crops)[..., np.newaxis] if crops else np.zeros((0, size, size, 1), np.uint8)
    return batch, used, clamped_boxes
