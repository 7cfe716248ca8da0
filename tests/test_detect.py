import numpy as np

from conftest import london_photos, requires_london_faces
from emotion_analyzer.detect import STILL_DETECTOR, DetectorSettings, FaceDetector


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
