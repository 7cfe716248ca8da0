"""Steady labels: each face's probabilities averaged over time, in seconds rather than frames (so it
behaves alike at 15 or 60 frames/s), and hysteresis on the label shown (another emotion must lead it by
a margin for a moment before the label changes)."""

import math
from dataclasses import dataclass

import numpy as np

from emotion_analyzer.common.settings import setting
from emotion_analyzer.errors import UserError


@dataclass(frozen=True)
class Smoothing:
    """Chosen with benchmarks/bench_steadiness.py; what it measures is in docs/real_faces.md."""
    seconds: float = setting(0.1, "time constant of each face's running average of probabilities, in seconds")
    margin: float = setting(0.1, "another emotion must lead the shown one by this much probability...")
    hold: float = setting(0.1, "...for this many seconds before the label changes")

    def check(self):
        if self.seconds <= 0 or self.hold < 0 or not 0 <= self.margin <= 1:
            raise UserError(f"smoothing {self}: seconds must be above 0, hold 0 or more, margin from 0 to 1")
        return self


class LabelSmoother:
    """One face's smoothed probabilities and shown label; `settings` None passes frames through."""

    def __init__(self, settings):
        self.settings = settings
        self.mean = None
        self.shown = None
        self.time_s = None
        self.challenger = None    # the emotion leading the shown one, and since when
        self.leading_since = None

    def update(self, probabilities, time_s):
        """Add one frame's probabilities seen at `time_s` (seconds); return (smoothed, shown index)."""
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if self.settings is None or self.mean is None:
            self.mean, self.shown, self.time_s = probabilities, int(np.argmax(probabilities)), time_s
            return self.mean, self.shown
        weight = 1.0 - math.exp(-max(time_s - self.time_s, 0.0) / self.settings.seconds)
        self.mean = self.mean + weight * (probabilities - self.mean)
        self.time_s = time_s
        leader = int(np.argmax(self.mean))
        if leader == self.shown or self.mean[leader] - self.mean[self.shown] < self.settings.margin:
            self.challenger = self.leading_since = None
        elif leader != self.challenger:
            self.challenger, self.leading_since = leader, time_s
        if self.challenger is not None and time_s - self.leading_since >= self.settings.hold:
            self.shown, self.challenger, self.leading_since = self.challenger, None, None
        return self.mean, self.shown


class FaceSmoothers:
    """A LabelSmoother per face of a video, by face id; `settings` None passes frames through."""

    def __init__(self, settings):
        self.settings = settings
        self._by_face = {}

    def update(self, face_ids, probabilities, time_s, remembered):
        """(smoothed probabilities, shown label index) per face after this frame's `probabilities`;
        faces no longer `remembered` (ids) are forgotten."""
        self._by_face = {face_id: smoother for face_id, smoother in self._by_face.items() if face_id in remembered}
        return [self._by_face.setdefault(face_id, LabelSmoother(self.settings)).update(probs, time_s)
                for face_id, probs in zip(face_ids, probabilities)]
