import numpy as np

from conftest import london_photos, requires_london_faces
from emotion_analyzer.detect import (STILL_DETECTOR, DetectorSettings, FaceDetector, FaceTracker, Framing,
                                     crop_faces, square_crop)
from emotion_analyzer.smoothing import Smoothing


def test_faces_cut_by_the_frame_edge_are_clamped():
    gray = np.zeros((100, 120), np.uint8)
    batch, used, boxes = crop_faces(gray, [(-20, 10, 50, 50), (100, 80, 40, 40), (500, 500, 10, 10)])
    assert batch.shape == (2, 48, 48, 1) and used == [0, 1]
    assert boxes == [(0, 10, 30, 50), (100, 80, 20, 20)]


def test_tracker_keeps_ids_and_each_face_its_own_smoothing():
    tracker = FaceTracker(Smoothing(seconds=0.1))
    first = tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)])
    second = tracker.update([(205, 2, 50, 50), (3, 1, 50, 50)])
    assert [t.face_id for t in second] == [first[1].face_id, first[0].face_id]
    one_hot = np.eye(6)
    tracker.add_probabilities(second, [one_hot[0], one_hot[1]], time_s=0.0)
    (moved, shown), (kept, _) = tracker.add_probabilities(second, [one_hot[2], one_hot[1]], time_s=0.1)
    weight = 1 - np.exp(-1)  # one time constant later
    np.testing.assert_allclose(moved, one_hot[0] + weight * (one_hot[2] - one_hot[0]), rtol=1e-6)
    assert shown == 0  # the new leader has not led for long enough to be shown
    np.testing.assert_allclose(kept, one_hot[1])


def test_framing_widens_and_lowers_the_crop_and_pads_at_the_edge():
    box = (100, 100, 40, 40)
    assert Framing(0.0, 0.0).crop_box(box) == box
    assert Framing(0.25, 0.1).crop_box(box) == (90, 94, 60, 60)  # 10 px more each side, 4 px lower
    gray = np.arange(200 * 200, dtype=np.uint32).reshape(200, 200).astype(np.uint8)
    edge = square_crop(gray, (-10, 0, 30, 30))  # 10 columns outside the frame: the edge repeated
    assert edge.shape == (30, 30)
    np.testing.assert_array_equal(edge[:, :10], np.repeat(gray[:30, :1], 10, axis=1))
    np.testing.assert_array_equal(edge[:, 10:], gray[:30, :20])


@requires_london_faces
def test_photos_are_searched_thoroughly_one_face_each_and_no_false_ones(tmp_path):
    from emotion_analyzer.images import decode_image_bytes, to_gray_uint8

    photos = london_photos(tmp_path, "neutral", 15) + london_photos(tmp_path, "happy", 15)
    thorough, fast = FaceDetector(STILL_DETECTOR), FaceDetector(DetectorSettings())
    found = {"thorough": 0, "fast": 0}
    for photo in photos:
        gray = to_gray_uint8(decode_image_bytes(photo, photo.read_bytes()))
        boxes = thorough.detect(gray)
        assert len(boxes) == 1, photo.name  # every portrait: its face, and nothing else
        x, y, w, h = boxes[0]
        assert 0.25 < w / gray.shape[1] < 0.6  # a face's size in these 675x675 portraits
        found["thorough"] += 1
        found["fast"] += len(fast.detect(gray)) == 1
    assert found["thorough"] == len(photos) >= found["fast"]


def test_the_fallback_cascade_is_tried_only_when_the_first_finds_nothing():
    frame = np.full((240, 320), 128, np.uint8)
    calls = []

    class Counting:
        def __init__(self, name, boxes):
            self.name, self.boxes = name, boxes

        def detectMultiScale2(self, image, **kwargs):
            calls.append(self.name)
            return self.boxes, [10] * len(self.boxes)

    detector = FaceDetector(DetectorSettings(fallback="haarcascade_frontalface_alt2.xml"))
    detector.cascade, detector.fallback = Counting("first", []), Counting("fallback", [(1, 2, 50, 50)])
    assert detector.detect(frame).tolist() == [[1, 2, 50, 50]] and calls == ["first", "fallback"]
    calls.clear()
    detector.cascade = Counting("first", [(5, 5, 60, 60)])
    assert detector.detect(frame).tolist() == [[5, 5, 60, 60]] and calls == ["first"]
