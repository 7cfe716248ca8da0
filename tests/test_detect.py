import numpy as np

from conftest import london_photos, requires_london_faces
from emotion_analyzer.detect import (DEFAULT_FRAMING, STILL_DETECTOR, DetectorSettings, FaceDetector, FaceTracker,
                                     Framing, crop_faces, framing_from_flags, framing_of_model, square_crop)
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


def test_a_followed_box_moves_with_its_face_and_stays_without_corners():
    from demo_media import MovingHeads

    from emotion_analyzer.images import to_gray_uint8

    clip = MovingHeads(speed=8, frames=2, heads=1)
    first, second = (to_gray_uint8(clip.read()[1]) for _ in range(2))
    step = clip.velocities[0]  # where the head went between the two frames
    tracker = FaceTracker()
    (track,) = tracker.update(FaceDetector(DetectorSettings()).detect(first))
    start = track.box
    tracker.follow(first)
    tracker.follow(second)
    assert abs(track.box[0] - start[0] - step[0]) <= 1.5 and abs(track.box[1] - start[1] - step[1]) <= 1.5
    assert track.box[2:] == start[2:]
    flat = np.full_like(second, 128)  # nothing to follow: the box stays where it was
    tracker.follow(flat)
    tracker.follow(flat)
    assert abs(track.box[0] - start[0] - step[0]) <= 1.5


def test_an_equalized_crop_spreads_a_dim_face_over_the_whole_range():
    from demo_media import FACE_IN_REGION, astronaut_face

    from emotion_analyzer.images import to_gray_uint8

    dim = (100 + to_gray_uint8(astronaut_face(150)) // 6).astype(np.uint8)  # a face lit flat: grey levels 100-142
    box = [FACE_IN_REGION]
    plain = crop_faces(dim, box, Framing(0.1, -0.05))[0][0, ..., 0]
    equalized = crop_faces(dim, box, Framing(0.1, -0.05, equalize=True))[0][0, ..., 0]
    assert plain.min() >= 100 and plain.max() <= 143
    assert equalized.min() < 10 and equalized.max() == 255
    # Equalizing keeps the order of grey levels: darker stays darker.
    order = np.argsort(plain, axis=None, kind="stable")
    assert np.all(np.diff(equalized.ravel()[order].astype(int)) >= 0)


def test_a_models_framing_fills_what_its_json_leaves_out_from_the_default():
    assert framing_of_model({}) == DEFAULT_FRAMING
    assert framing_of_model({"framing": {"margin": 0.2, "offset": 0.1}}) == Framing(0.2, 0.1, DEFAULT_FRAMING.equalize)
    assert framing_of_model({"framing": {"margin": 0.0, "offset": 0.0, "equalize": False}}) == Framing(0.0, 0.0)
    assert framing_from_flags(None, None, None) is None  # nothing asked: the model's JSON decides
    assert framing_from_flags(None, None, False) == Framing(DEFAULT_FRAMING.margin, DEFAULT_FRAMING.offset, False)


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
