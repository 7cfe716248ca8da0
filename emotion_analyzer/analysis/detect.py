"""Finding faces: OpenCV's Haar cascades and their settings for videos (fast) and photos (thorough),
and MTCNN for photos, which also finds turned heads and gives each face's eyes."""

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from emotion_analyzer.common.device import quiet_native_log
from emotion_analyzer.common.settings import setting
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.framing import eye_angle
from emotion_analyzer.core.images import to_uint8
from emotion_analyzer.analysis.track import matches_by_overlap, without_nested

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
    """A Haar cascade's search."""
    scale_factor: float = setting(1.15, "the cascade's scale step between face sizes; larger is faster")
    min_neighbors: int = setting(5, "neighbouring detections a face needs; more means fewer false faces")
    min_size: int = setting(48, "smallest face to look for, in pixels of the original frame")
    detect_width: int = setting(320, "frames wider than this are shrunk before detection; 0 = full resolution")
    fallback: str | None = setting(None, "a cascade opencv-python ships (or a path) tried where the first finds"
                                         " no face; none for none")
    relative_neighbors: float = setting(0.0, "drop faces with fewer neighbouring detections than this share of"
                                             " the strongest face's; 0 = keep all")

    def check(self, name):
        if self.scale_factor <= 1:
            raise UserError(f"{name}.scale_factor {self.scale_factor}: expected a number above 1, such as 1.1")
        limits = {"min_neighbors": (self.min_neighbors >= 0, "0 or more"), "min_size": (self.min_size >= 1, "at least 1"),
                  "detect_width": (self.detect_width == 0 or self.detect_width >= 32, "0 (full resolution) or at least 32")}
        for field_name, (ok, expected) in limits.items():
            if not ok:
                raise UserError(f"{name}.{field_name} {getattr(self, field_name)}: expected {expected}")
        if not 0 <= self.relative_neighbors <= 1:
            raise UserError(f"{name}.relative_neighbors {self.relative_neighbors}: expected a share from 0 to 1")
        return self


# Photos have no frame budget: finer scale steps, and a second cascade (trained on other faces) when
# the first finds none. At these steps a real face gathers 46-233 neighbouring detections in the
# London portraits and the false ones (chins, collars) 6-18, so a face needs a fifth of the strongest
# one's. Chosen on real photos (docs/real_faces.md). Photos wider than STILL_DETECT_WIDTH are searched
# shrunk to it: a face in a large photo is large too, and at full size an 8000x8000 portrait took
# 9.6 s and 2.65 GB and gave two false faces beside the real one.
PHOTO_DETECT_WIDTH = 1280
PHOTO_DETECTOR = DetectorSettings(scale_factor=1.05, min_neighbors=5, min_size=48, detect_width=PHOTO_DETECT_WIDTH,
                                  fallback="haarcascade_frontalface_alt2.xml", relative_neighbors=0.2)


# --detector: auto = MTCNN for photos (with Haar's boxes, and Haar's faces where it finds none), Haar
# for videos, cameras and streams, where MTCNN cannot keep the frame rate (docs/real_faces.md).
DETECTORS = ("auto", "haar", "mtcnn")


class Detections(NamedTuple):
    """The faces found in a frame: boxes (N, 4) int x, y, w, h, left to right; each face's eye centres
    (N, 2, 2) float x, y, the one on the image's left first, or None from a detector without them; and
    whose box each face has, "haar" or "mtcnn" (their boxes sit differently on a face, so each is framed
    its own way)."""
    boxes: np.ndarray
    eyes: np.ndarray | None
    detectors: tuple


def haar_detections(boxes):
    """Detections of Haar boxes: no eyes."""
    return Detections(boxes, None, ("haar",) * len(boxes))


def reading_order(boxes):
    """Indices of the boxes left to right (then top to bottom), so results and new face ids are repeatable."""
    return np.lexsort((boxes[:, 1], boxes[:, 0]))


def in_reading_order(boxes, eyes, detectors):
    """Detections in reading order."""
    order = reading_order(boxes)
    return Detections(boxes[order], None if eyes is None else eyes[order], tuple(detectors[i] for i in order))


class FaceDetector:
    """Haar detection on a grayscale frame, downscaled to detect_width; boxes in original-frame pixels."""

    def __init__(self, settings=None, cascade=None):
        self.settings = (settings or DetectorSettings()).check("haar")
        self.cascade = cascade or load_cascade()
        self.fallback = load_cascade(self.settings.fallback) if self.settings.fallback else None

    def detect(self, gray):
        """(N, 4) int array of x, y, w, h, left to right: the first cascade's faces, else the fallback's."""
        boxes = self._detect_with(self.cascade, gray)
        if len(boxes) == 0 and self.fallback is not None:
            boxes = self._detect_with(self.fallback, gray)
        boxes = boxes[without_nested(boxes)]  # one box per face
        return boxes[reading_order(boxes)]  # the cascade's threads return faces in any order

    def find(self, image, gray):
        """Detections of `gray` (the frame `image` in grayscale); Haar gives no eyes."""
        return haar_detections(self.detect(gray))

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


# MTCNN's landmarks of a face turned by 50 degrees in the picture are off by 9 degrees on average and
# up to 19 (eyes, mouth and nose alike), against 1-2 near upright (48 turned London portraits): a face
# turned by more than REFINE_DEGREES is turned upright by that first estimate, its surroundings
# (REFINE_REGION times the box) searched again, and the second, near-upright answer is kept.
REFINE_DEGREES = 10.0
REFINE_REGION = 2.0


# A Haar box and an MTCNN box overlapping by at least this share (intersection over union) frame the
# same face: on the London portraits the Haar box is 1.28x as wide and 0.94x as tall with the same
# centre, an overlap of about 0.7.
SAME_FACE = 0.5


# MTCNN's boxes are narrower than Haar's (a face Haar boxes at 48 pixels, MTCNN at about 36 by 47), so
# Haar's min_size is not its floor: it keeps faces of at least this many pixels in height, what its
# own default search (min_face_size 20) returns, so a group photo's small faces are not dropped.
MTCNN_MIN_HEIGHT = 20


def mtcnn_weights():
    """The P-, R- and O-Net weight files inside the installed mtcnn package."""
    from importlib.resources import files

    folder = files("mtcnn") / "assets" / "weights"
    return [str(folder / f"{net}.lz4") for net in ("pnet", "rnet", "onet")]


def mtcnn_from_its_wheel():
    """MTCNN with the weights its wheel ships, named by full path: given a bare name, mtcnn 1.0.0 loads
    a file of that name from the working directory first, and its weight files are pickles (joblib),
    which run code as they load."""
    from emotion_analyzer.common.device import start_tensorflow

    start_tensorflow()  # quietly, before mtcnn imports it
    from mtcnn import MTCNN
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    return MTCNN(stages=[stage(weights=path) for stage, path in zip((StagePNet, StageRNet, StageONet),
                                                                       mtcnn_weights())])


class MtcnnDetector:
    """MTCNN (the mtcnn package, whose P-, R- and O-Net weights ship inside its wheel) on the colour
    frame: boxes and eyes. Frames wider than `detect_width` are searched shrunk to it; faces less than
    `min_height` pixels tall are dropped. With a `haar` detector, a face Haar finds too takes Haar's
    box (the model reads faces framed from Haar's boxes better: docs/real_faces.md), keeping MTCNN's
    eyes; every face only Haar finds is added once MTCNN, looking at it alone, sees it too (its eyes),
    and where MTCNN finds no face, Haar's faces are the answer: a photo's answer has every face either
    detector finds, and not the false ones Haar adds beside MTCNN's."""

    def __init__(self, min_height=MTCNN_MIN_HEIGHT, detect_width=PHOTO_DETECT_WIDTH, haar=None):
        self.min_height, self.detect_width, self.haar = min_height, detect_width, haar
        self._mtcnn = mtcnn_from_its_wheel()

    def find(self, image, gray):
        height, width = gray.shape[:2]
        scale = min(1.0, self.detect_width / width) if self.detect_width else 1.0
        rgb = to_rgb_uint8(image, gray)
        if scale < 1.0:
            rgb = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        # MTCNN 1.0.0 returns no face at all, silently, for any min_face_size but its default, so the
        # size floor is applied to what it returns.
        faces = [self._refined(rgb, box, eyes) for box, eyes in self._faces(rgb)
                 if box[3] >= self.min_height * scale]
        if not faces:
            return (self.haar.find(image, gray) if self.haar is not None
                    else Detections(np.zeros((0, 4), np.int32), np.zeros((0, 2, 2), np.float32), ()))
        boxes = np.round(np.array([box for box, _ in faces], np.float64).reshape(-1, 4) / scale).astype(np.int32)
        eyes = np.array([eyes for _, eyes in faces], np.float32).reshape(-1, 2, 2) / scale
        detectors = ["mtcnn"] * len(boxes)
        if self.haar is not None:
            haar_boxes = self.haar.detect(gray)
            boxes, detectors = with_boxes_of(haar_boxes, boxes)
            confirmed = [(box, found) for box in faces_not_covered(haar_boxes, boxes)
                         if (found := self._second_look(rgb, box * scale)) is not None]
            if confirmed:
                boxes = np.concatenate([boxes, [box for box, _ in confirmed]]).astype(np.int32)
                eyes = np.concatenate([eyes, np.array([found for _, found in confirmed], np.float32) / scale])
                detectors += ["haar"] * len(confirmed)
        return in_reading_order(boxes, eyes, detectors)

    def _second_look(self, rgb, box):
        """The eyes of a face Haar boxed at `box` (in `rgb`'s pixels) that MTCNN missed, found by MTCNN
        searching the box's surroundings alone, or None: then no face is there (on turned portraits
        with reflected borders, Haar's faces that MTCNN does not confirm were all false)."""
        x, y, w, h = box
        side = int(round(REFINE_REGION * max(w, h)))
        left, top = x + w / 2 - side / 2, y + h / 2 - side / 2
        region = cv2.warpAffine(rgb, np.float32([[1, 0, -left], [0, 1, -top]]), (side, side),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for (fx, fy, fw, fh), eyes in self._faces(region):
            centre_x, centre_y = fx + fw / 2 + left, fy + fh / 2 + top
            if x <= centre_x <= x + w and y <= centre_y <= y + h:
                return eyes + (left, top)
        return None

    def _faces(self, rgb):
        """[(box x, y, w, h, eyes ((x, y), (x, y)) the image-left one first)] that MTCNN finds in `rgb`."""
        # Where its first stage finds nothing, TensorFlow's runtime logs an "Incompatible shapes" warning
        # from the second: a photo without a face is no fault to report.
        with quiet_native_log():
            found = self._mtcnn.detect_faces(rgb)
        return [(np.array(face["box"], np.float64),
                 np.array(sorted((face["keypoints"]["left_eye"], face["keypoints"]["right_eye"])), np.float64))
                for face in found]

    def _refined(self, rgb, box, eyes):
        """(box, eyes) of a face, searched again turned near upright when it is turned by more than
        REFINE_DEGREES: the box then has the upright face's size, centred where the face is, and the
        eyes are the second search's, in `rgb`'s coordinates. The first answer when the second finds
        no face."""
        angle = eye_angle(eyes)
        if abs(angle) <= REFINE_DEGREES:
            return box, eyes
        x, y, w, h = box
        side = int(round(REFINE_REGION * max(w, h)))
        to_region = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, 1.0)
        to_region[:, 2] += (side / 2 - (x + w / 2), side / 2 - (y + h / 2))
        region = cv2.warpAffine(rgb, to_region, (side, side), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        found = self._faces(region)
        if not found:
            return box, eyes
        # the face searched again is at the region's centre; others there are neighbours'
        (rx, ry, rw, rh), region_eyes = min(
            found, key=lambda face: np.hypot(*(face[0][:2] + face[0][2:] / 2 - side / 2)))
        back = cv2.invertAffineTransform(to_region)
        centre = back @ np.array([rx + rw / 2, ry + rh / 2, 1.0])
        eyes_back = np.array([back @ np.array([ex, ey, 1.0]) for ex, ey in region_eyes])
        return (np.array([centre[0] - rw / 2, centre[1] - rh / 2, rw, rh]),
                np.array(sorted(map(tuple, eyes_back)), np.float64))


def with_boxes_of(haar_boxes, boxes):
    """MTCNN's `boxes` with a Haar box in place of each one it overlaps by SAME_FACE or more (each Haar
    box used once, best overlap first), and whose box each face now has."""
    boxes, detectors = boxes.copy(), ["mtcnn"] * len(boxes)
    for index, haar_index in matches_by_overlap(haar_boxes, boxes, SAME_FACE).items():
        boxes[index], detectors[index] = haar_boxes[haar_index], "haar"
    return boxes, detectors


def faces_not_covered(haar_boxes, boxes):
    """The Haar boxes that are no face of `boxes`: none of those boxes holds its centre, and it holds
    none of theirs (a turned face Haar boxes differently overlaps MTCNN's box by less than SAME_FACE)."""
    def holds(box, point):
        x, y, w, h = box
        return x <= point[0] <= x + w and y <= point[1] <= y + h

    centres = [(x + w / 2, y + h / 2) for x, y, w, h in boxes]
    kept = [box for box in haar_boxes
            if not any(holds(other, (box[0] + box[2] / 2, box[1] + box[3] / 2)) or holds(box, centre)
                       for other, centre in zip(boxes, centres))]
    return np.array(kept, np.int32).reshape(-1, 4)


def to_rgb_uint8(image, gray):
    """The frame as MTCNN takes it: 8-bit RGB (`gray`, its grayscale, replicated for a gray frame)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(to_uint8(image), cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


