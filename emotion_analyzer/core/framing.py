"""Framing: how a face box becomes the 48x48 crop the CNN reads, and cutting the crops out of a frame,
each face turned upright by its eyes when the detector gives them."""

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from emotion_analyzer import config
from emotion_analyzer.common.settings import setting
from emotion_analyzer.core.images import equalize, to_model_input


@dataclass(frozen=True)
class Framing:
    """How a detected face box becomes the square crop the CNN reads. A Haar box is tighter than
    FER2013's faces, which show forehead, chin and cheeks: the crop adds `margin` of the box's size on
    each side and moves down by `offset` of its height. Chosen on real photos for a model
    (docs/real_faces.md) and recorded in its JSON, one per detector, as each detector's boxes sit
    differently on a face. `equalize`: the 48x48 crop's histogram is equalized, when the model reads
    equalized faces (its JSON's `input`, model.reads_equalized), never chosen apart from it."""
    margin: float = setting(0.0, "the crop adds this share of the face box on each side")
    offset: float = setting(0.0, "and moves down by this share of the box's height")
    equalize: bool = setting(False, hidden=True)  # as the model reads (its JSON's input record), never by hand

    def crop_box(self, box):
        x, y, w, h = box
        side = max(w, h) * (1 + 2 * self.margin)
        centre_x, centre_y = x + w / 2, y + h / 2 + self.offset * h
        return (int(round(centre_x - side / 2)), int(round(centre_y - side / 2)), int(round(side)),
                int(round(side)))


# The framings the shipped model was measured with, and that every model training.py saves records:
# Haar, a fifth of the box more on each side, raised by a twentieth of its height (more forehead);
# MTCNN, whose boxes are narrower and a little taller, a tenth more, raised by a tenth. Chosen for the
# shipped model on the London portraits with benchmarks/bench_framing.py (docs/real_faces.md).
DEFAULT_FRAMINGS = {"haar": Framing(margin=0.2, offset=-0.05), "mtcnn": Framing(margin=0.1, offset=-0.1)}
DEFAULT_FRAMING = DEFAULT_FRAMINGS["haar"]


def framings_of_model(info):
    """{detector: Framing} as a model's JSON records them (`framings`; older models: `framing`, Haar's),
    what it leaves out DEFAULT_FRAMINGS', each equalized as the model reads (model.reads_equalized)."""
    from emotion_analyzer.core.model import reads_equalized

    recorded = {name: dict(values) for name, values in info.get("framings", {}).items()}
    if "framing" in info:
        recorded.setdefault("haar", dict(info["framing"]))
    equalized = reads_equalized(info)
    return {name: replace(default, **{k: v for k, v in recorded.get(name, {}).items() if k != "equalize"},
                          equalize=equalized)
            for name, default in DEFAULT_FRAMINGS.items()}


def framings_for_json():
    """What a trained model's JSON records as its framings: each detector's margin and offset."""
    return {name: {"margin": framing.margin, "offset": framing.offset} for name, framing in DEFAULT_FRAMINGS.items()}


def eye_angle(eyes):
    """Degrees by which the line from the image-left eye to the other one falls to the right."""
    (left_x, left_y), (right_x, right_y) = eyes
    return math.degrees(math.atan2(right_y - left_y, right_x - left_x))


def clamp_box(box, width, height):
    """The part of a box inside the frame (faces cut by the edge), or None if nothing is left."""
    x, y, w, h = (int(v) for v in box)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1 - x0, y1 - y0


def square_crop(gray, box):
    """The square `box` of `gray`, the parts outside the frame filled by repeating its edge."""
    x, y, side, _ = box
    height, width = gray.shape[:2]
    pad = max(0, -x, -y, x + side - width, y + side - height)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x, y = x + pad, y + pad
    return gray[y:y + side, x:x + side]


def upright_crop(gray, box, eyes, framing):
    """The face in `box` turned about its centre until its `eyes` are level, then framed by `framing`;
    the parts outside the frame filled by repeating its edge."""
    x, y, w, h = box
    matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), eye_angle(eyes), 1.0)
    left, top, side, _ = framing.crop_box(box)
    matrix[:, 2] -= (left, top)
    return cv2.warpAffine(gray, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class Crops:
    """The faces of one frame as the model reads them."""
    pixels: np.ndarray  # (N, 48, 48, 1) uint8
    used: list          # the index of each crop's box among the boxes given
    boxes: list         # each crop's box clamped to the frame (to draw; faces cut by the edge)

    def __len__(self):
        return len(self.used)


def crop_faces(gray, boxes, framing=DEFAULT_FRAMING, eyes=None):
    """Crops of the boxes as `framing` frames them (one Framing for all, or a list of one per box), each
    turned upright by its `eyes` when given; boxes wholly outside the frame are left out."""
    height, width = gray.shape[:2]
    framings = framing if isinstance(framing, (list, tuple)) else [framing] * len(boxes)
    crops, used, clamped_boxes = [], [], []
    for index, (box, framed) in enumerate(zip(boxes, framings)):
        clamped = clamp_box(box, width, height)
        if clamped is None:
            continue
        face = (square_crop(gray, framed.crop_box(box)) if eyes is None
                else upright_crop(gray, box, eyes[index], framed))
        crop = to_model_input(face)
        crops.append(equalize(crop) if framed.equalize else crop)
        used.append(index)
        clamped_boxes.append(clamped)
    size = config.IMAGE_SIZE
    batch = np.stack(crops)[..., np.newaxis] if crops else np.zeros((0, size, size, 1), np.uint8)
    return Crops(batch, used, clamped_boxes)
