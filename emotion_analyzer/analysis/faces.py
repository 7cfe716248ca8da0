"""A face as the analyzer read it in one frame: the record every output, chart and drawing takes."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceReading:
    """One face of one frame: its id (kept from frame to frame in a video; 1, 2, ... left to right in a
    photo), its box (x, y, w, h in frame pixels, clamped to the frame), the probability of each label
    (smoothed in videos) and the index of the label shown (in videos the steady label, which may trail
    the top probability)."""
    face_id: int
    box: tuple
    probabilities: np.ndarray
    shown: int

    @property
    def confidence(self):
        """The probability of the label shown."""
        return float(self.probabilities[self.shown])


def photo_faces(boxes, probabilities):
    """The faces of one photo, numbered left to right from 1, each shown as its top label."""
    return [FaceReading(face_id, tuple(int(v) for v in box), probs, int(np.argmax(probs)))
            for face_id, (box, probs) in enumerate(zip(boxes, probabilities), start=1)]
