"""Following faces from frame to frame in a video: which detection continues which face, boxes moved
by optical flow between detections, and the detector run every few frames on a worker thread."""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np


def intersection(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))


def iou(a, b):
    inter = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def nested_share(a, b):
    """How much of the smaller of two boxes lies inside the other (1.0: wholly inside)."""
    smaller = min(a[2] * a[3], b[2] * b[3])
    return intersection(a, b) / smaller if smaller else 0.0


# A box at least this much inside another is the same face: Haar's second, smaller box on a face
# (more often on a moving, blurred one) would otherwise be drawn over it as a face of its own.
NESTED_SHARE = 0.6


def without_nested(boxes):
    """The boxes less than NESTED_SHARE inside a larger one (a larger box kept over the smaller)."""
    order = sorted(range(len(boxes)), key=lambda i: -boxes[i][2] * boxes[i][3])
    kept = []
    for i in order:
        if all(nested_share(boxes[i], boxes[k]) < NESTED_SHARE for k in kept):
            kept.append(i)
    return sorted(kept)


def matches_by_overlap(boxes, others, min_iou, nested=False):
    """{index in `others`: index in `boxes`}: each box paired with at most one other, greatest overlap
    (intersection over union) first; overlaps below `min_iou` stay unpaired, unless (`nested`) one box
    lies NESTED_SHARE inside the other."""
    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(boxes) for j, b in enumerate(others)), reverse=True)
    paired, matches = set(), {}
    for overlap, i, j in pairs:
        close = overlap >= min_iou or (nested and nested_share(boxes[i], others[j]) >= NESTED_SHARE)
        if close and i not in paired and j not in matches:
            paired.add(i)
            matches[j] = i
    return matches


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


# A detection continues a face when their boxes overlap by at least MIN_IOU (a face moves less than
# about a fifth of its width between detections at live rates); a face no detection continues is
# kept, undrawn, for MAX_MISSED detections, so a blink of the cascade does not cost it its id and history.
MIN_IOU = 0.3
MAX_MISSED = 2


@dataclass
class Track:
    face_id: int
    box: tuple
    missed: int = 0
    corners: np.ndarray | None = None  # followed since the last detection, in the tracker's flow frame


class FaceTracker:
    """Follows faces by box overlap between detections and by optical flow in between, so each face
    keeps its id."""

    def __init__(self, min_iou=MIN_IOU, max_missed=MAX_MISSED, first_id=1):
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks = []
        self._next_id = first_id
        self._flow_frame = None  # the last frame follow() saw, shrunk, and its scale

    @property
    def seen(self):
        """The faces the last detection or flow step placed (not those missed for a while)."""
        return [track for track in self.tracks if track.missed == 0]

    @property
    def face_ids(self):
        """Every face still remembered, seen or missed."""
        return {track.face_id for track in self.tracks}

    def update(self, boxes):
        """Match new detections to tracks (greedy by overlap); return the live tracks in box order."""
        matches = matches_by_overlap([t.box for t in self.tracks], [tuple(b) for b in boxes], self.min_iou,
                                     nested=True)
        matched_tracks = set(matches.values())
        assignment = {bi: self.tracks[ti] for bi, ti in matches.items()}
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
                track = Track(self._next_id, tuple(int(v) for v in box))
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
        tracks = self.seen
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


@dataclass
class FoundFaces:
    """The faces of one video frame: their ids and boxes, and every face id still remembered."""
    face_ids: list
    boxes: list
    remembered: set


class VideoFaces:
    """The faces of a video's frames: the detector on the first frame and then every `detect_every`
    frames on a worker thread, overlapping the classification and drawing of the frame (the other
    core); in between, boxes move with the faces' optical flow (`follow`) or hold still."""

    def __init__(self, detector, detect_every, follow, first_face_id=1):
        self.detector, self.detect_every, self.follow = detector, detect_every, follow
        self.tracker = FaceTracker(first_id=first_face_id)
        self.frames = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="detect")
        self._pending = None  # the detection started on the frame under way

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._pool.shutdown(wait=True)

    def _timed_detect(self, image, gray):
        started = time.perf_counter()
        return self.detector.find(image, gray).boxes, time.perf_counter() - started

    def place(self, image, gray, stats):
        """The FoundFaces of this frame (`image`, and `gray` its grayscale): the boxes followed from the
        last frame, or detected on the first; every `detect_every` frames a detection starts on this one,
        for the next frame, once `take_detection` applies it."""
        if self.follow:
            with stats.stage("follow"):
                self.tracker.follow(gray)
        if self.frames == 0:
            boxes, seconds = self._timed_detect(image, gray)
            stats.add_stage("detect", seconds)
            self.tracker.update(boxes)
        elif self.frames % self.detect_every == 0:
            self._pending = self._pool.submit(self._timed_detect, image, gray)
        self.frames += 1
        seen = self.tracker.seen
        return FoundFaces([t.face_id for t in seen], [t.box for t in seen], self.tracker.face_ids)

    def take_detection(self, stats):
        """Apply the detection `place` started, if any, waiting for it (timed): the next frame's faces."""
        if self._pending is None:
            return
        with stats.stage("wait for detection"):
            boxes, seconds = self._pending.result()
        self._pending = None
        stats.add_stage("detect", seconds)
        self.tracker.update(boxes)
