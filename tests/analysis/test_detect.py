from pathlib import Path

import numpy as np
import pytest

from emotion_analyzer.analysis.detect import (DetectorSettings, FaceDetector, haar_detections, PHOTO_DETECTOR,
                                              with_boxes_of)
from emotion_analyzer.core.framing import eye_angle


def test_photos_are_searched_thoroughly_one_face_each_and_no_false_ones(tmp_path, london_photos):
    from emotion_analyzer.core.images import decode_image_bytes, to_gray_uint8

    photos = london_photos(tmp_path, "neutral", 15) + london_photos(tmp_path, "happy", 15)
    thorough, fast = FaceDetector(PHOTO_DETECTOR), FaceDetector(DetectorSettings())
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


def test_mtcnn_is_the_pinned_wheel_and_loads_its_own_weights_never_a_file_of_the_working_folder(
        tmp_path, monkeypatch, project_root):
    from importlib.metadata import version

    import joblib

    from emotion_analyzer.analysis.detect import mtcnn_from_its_wheel, mtcnn_weights

    pins = dict(line.split("==") for line in (project_root / "requirements.txt").read_text().split()
                if "==" in line)
    assert version("mtcnn") == pins["mtcnn"]  # the weights tested here are the ones a user installs

    ran = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (ran.write_text, ("planted weights ran",))

    for net in ("pnet", "rnet", "onet"):  # mtcnn's weights are pickles: a planted one would run code
        joblib.dump(Planted(), tmp_path / f"{net}.lz4")
    monkeypatch.chdir(tmp_path)
    detector = mtcnn_from_its_wheel()
    assert not ran.exists()
    assert all(Path(path).is_file() and Path(path).is_absolute() for path in mtcnn_weights())
    assert [len(stage.model.get_weights()) for stage in detector.stages] == [13, 16, 21]  # every layer loaded


def test_mtcnn_finds_a_face_and_its_eyes_with_the_network_cut_off(monkeypatch):
    import socket

    from demo_media import compose_frame

    from emotion_analyzer.analysis.detect import MtcnnDetector
    from emotion_analyzer.core.images import to_gray_uint8

    def refuse(*args, **kwargs):
        raise AssertionError("MTCNN tried to reach the network for its weights")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    frame, boxes = compose_frame(0, faces=1)
    found = MtcnnDetector().find(frame, to_gray_uint8(frame))
    assert found.detectors == ("mtcnn",) and len(found.boxes) == 1 and found.eyes.shape == (1, 2, 2)
    (x, y, w, h), (left, right) = found.boxes[0], found.eyes[0]
    tx, ty, tw, th = boxes[0]
    assert abs((x + w / 2) - (tx + tw / 2)) < tw / 4 and abs((y + h / 2) - (ty + th / 2)) < th / 3
    assert left[0] < right[0] and x < left[0] < right[0] < x + w and y < left[1] < y + h / 2 + h / 4
    assert abs(left[1] - right[1]) < h / 10  # an upright face: its eyes level


def test_where_mtcnn_finds_no_face_haar_is_asked():
    from emotion_analyzer.analysis.detect import MtcnnDetector

    class Nothing:
        def detect_faces(self, rgb):
            return []

    detector = MtcnnDetector.__new__(MtcnnDetector)
    detector.min_height, detector.detect_width = 20, 1280
    detector._mtcnn = Nothing()
    gray = np.full((240, 320), 128, np.uint8)
    detector.haar = None
    assert detector.find(gray, gray).boxes.shape == (0, 4)

    class Haar:
        def find(self, image, gray):
            return haar_detections(np.array([[1, 2, 50, 50]]))
    detector.haar = Haar()
    found = detector.find(gray, gray)
    assert found.detectors == ("haar",) and found.boxes.tolist() == [[1, 2, 50, 50]] and found.eyes is None


def test_each_mtcnn_face_takes_the_haar_box_it_overlaps_most_once():
    # two faces side by side as the detectors box them: Haar's wider and a little shorter, same centres
    mtcnn = np.array([[100, 100, 78, 100], [300, 110, 70, 90]])
    haar = np.array([[290, 113, 90, 85], [90, 103, 100, 94], [600, 400, 60, 60]])  # the last: a collar
    boxes, detectors = with_boxes_of(haar, mtcnn)
    assert boxes.tolist() == [[90, 103, 100, 94], [290, 113, 90, 85]] and detectors == ["haar", "haar"]
    # one Haar box over two MTCNN faces goes to the one it overlaps most; the other keeps its own box
    boxes, detectors = with_boxes_of(haar[1:2], np.array([[100, 100, 78, 100], [150, 100, 78, 100]]))
    assert boxes.tolist() == [[90, 103, 100, 94], [150, 100, 78, 100]] and detectors == ["haar", "mtcnn"]
    assert with_boxes_of(haar[2:], mtcnn)[1] == ["mtcnn", "mtcnn"]  # nothing overlaps: MTCNN's boxes


def test_a_portrait_is_framed_by_haars_box_with_mtcnns_eyes_a_turned_one_by_mtcnns(tmp_path, london_photos):
    import cv2

    from emotion_analyzer.analysis.detect import MtcnnDetector

    haar = FaceDetector(PHOTO_DETECTOR)
    alone, paired = MtcnnDetector(), MtcnnDetector(haar=haar)
    for photo in london_photos(tmp_path, "neutral", 2) + london_photos(tmp_path, "happy", 2):
        image = cv2.imread(str(photo))
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        found = paired.find(image, gray)
        assert found.detectors == ("haar",) and found.boxes.tolist() == haar.detect(gray).tolist(), photo.name
        np.testing.assert_array_equal(found.eyes, alone.find(image, gray).eyes)
        height, width = gray.shape
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), 50, 1.0)
        turned = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
        turned_gray = cv2.cvtColor(turned, cv2.COLOR_BGR2GRAY)
        found = paired.find(turned, turned_gray)  # Haar misses a face turned this far
        assert found.detectors == ("mtcnn",) and abs(eye_angle(found.eyes[0]) + 50) < 8, photo.name


@pytest.mark.parametrize("tile", [80, 130, 180])
def test_a_group_photo_gives_every_face_either_detector_finds_and_no_other(tmp_path, tile, london_photos):
    """Fifty real faces tiled 10 by 5: at 130 pixels MTCNN's boxes are smaller than Haar's min_size and
    Haar misses two, at 80 Haar finds ten; the photo's answer has each of the fifty once."""
    import cv2

    from emotion_analyzer.analysis.detect import MtcnnDetector

    photos = london_photos(tmp_path, "neutral", 25) + london_photos(tmp_path, "happy", 25)
    faces = [cv2.resize(cv2.imread(str(p)), (tile, tile), interpolation=cv2.INTER_AREA) for p in photos]
    group = np.vstack([np.hstack(faces[row * 10:(row + 1) * 10]) for row in range(5)])
    gray = cv2.cvtColor(group, cv2.COLOR_BGR2GRAY)
    haar = FaceDetector(PHOTO_DETECTOR)
    found = MtcnnDetector(haar=haar).find(group, gray)
    centres = found.boxes[:, :2] + found.boxes[:, 2:] / 2
    tiles = sorted(zip((centres[:, 1] // tile).astype(int), (centres[:, 0] // tile).astype(int)))
    assert tiles == [(row, column) for row in range(5) for column in range(10)]  # each face once, none else
    assert len(found.boxes) >= len(haar.detect(gray))
    assert found.eyes.shape == (50, 2, 2)


def test_a_turned_portrait_gets_no_false_face_from_haar_beside_mtcnns(tmp_path, london_photos):
    """Turned on a reflected border, portraits show Haar false faces in the reflection; a face only Haar
    finds counts once MTCNN, looking again at it alone, sees it."""
    import cv2

    from emotion_analyzer.analysis.detect import MtcnnDetector

    detector = MtcnnDetector(haar=FaceDetector(PHOTO_DETECTOR))
    counts = []
    for photo in london_photos(tmp_path, "neutral", 8):
        image = cv2.imread(str(photo))
        height, width = image.shape[:2]
        for degrees in (-35, -20, 20, 35):
            turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
            turned = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
            counts.append(len(detector.find(turned, cv2.cvtColor(turned, cv2.COLOR_BGR2GRAY)).boxes))
    assert counts == [1] * 32


def test_a_huge_portrait_is_searched_at_a_bounded_size_without_false_faces(tmp_path, london_photos):
    import cv2

    from emotion_analyzer.core.images import to_gray_uint8

    photo = london_photos(tmp_path, "happy", 1)[0]  # at 8000x8000 and full size Haar found two false faces here
    huge = to_gray_uint8(cv2.resize(cv2.imread(str(photo)), (8000, 8000), interpolation=cv2.INTER_CUBIC))
    boxes = FaceDetector(PHOTO_DETECTOR).detect(huge)
    assert len(boxes) == 1 and 0.25 < boxes[0][2] / 8000 < 0.6  # the face, at its size in the portrait


def test_a_turned_face_is_searched_again_upright_so_its_eyes_give_the_turn(tmp_path, monkeypatch, london_photos):
    import cv2

    from emotion_analyzer.analysis import detect
    from emotion_analyzer.core.framing import eye_angle

    detector = detect.MtcnnDetector()
    photos = london_photos(tmp_path, "neutral", 3) + london_photos(tmp_path, "happy", 3)

    def errors():
        """Degrees between the turn of each photo and the tilt of the eyes found in it, and the height
        of its box over the upright photo's."""
        found = []
        for photo in photos:
            image = cv2.imread(str(photo))
            height, width = image.shape[:2]
            upright = detector.find(image, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)).boxes[0]
            for degrees in (-50, 50):
                turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
                turned = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
                faces = detector.find(turned, cv2.cvtColor(turned, cv2.COLOR_BGR2GRAY))
                assert len(faces.boxes) == 1, photo.name
                found.append((abs(eye_angle(faces.eyes[0]) + degrees), faces.boxes[0][3] / upright[3]))
        return np.array(found)

    refined = errors()
    monkeypatch.setattr(detect, "REFINE_DEGREES", 360.0)  # the first search's answer alone
    first = errors()
    assert refined[:, 0].max() < 8 and refined[:, 0].mean() < first[:, 0].mean()  # first: up to 19 degrees off
    assert np.all(np.abs(refined[:, 1] - 1) < 0.1)  # the face's upright size, not the turned box's


def test_haar_gives_one_box_per_face():
    class TwoBoxesOnAFace:
        def detectMultiScale2(self, image, **kwargs):
            return [(20, 30, 40, 40), (100, 100, 120, 120), (130, 140, 50, 50)], [9, 12, 9]

    detector = FaceDetector(DetectorSettings(detect_width=0), cascade=TwoBoxesOnAFace())  # boxes as found
    assert detector.detect(np.full((400, 400), 128, np.uint8)).tolist() == [[20, 30, 40, 40], [100, 100, 120, 120]]
