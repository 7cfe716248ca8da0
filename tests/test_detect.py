import numpy as np

from emotion_analyzer.detect import FaceTracker, crop_faces


def test_faces_cut_by_the_frame_edge_are_clamped():
    gray = np.zeros((100, 120), np.uint8)
    batch, used, boxes = crop_faces(gray, [(-20, 10, 50, 50), (100, 80, 40, 40), (500, 500, 10, 10)])
    assert batch.shape == (2, 48, 48, 1) and used == [0, 1]
    assert boxes == [(0, 10, 30, 50), (100, 80, 20, 20)]


def test_tracker_keeps_ids_and_smooths():
    tracker = FaceTracker(window=3)
    first = tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)])
    second = tracker.update([(205, 2, 50, 50), (3, 1, 50, 50)])
    assert [t.face_id for t in second] == [first[1].face_id, first[0].face_id]
    one_hot = np.eye(6)
    tracker.add_probabilities(second, [one_hot[0], one_hot[1]])
    smoothed = tracker.add_probabilities(second, [one_hot[2], one_hot[1]])
    np.testing.assert_allclose(smoothed[0], (one_hot[0] + one_hot[2]) / 2)
