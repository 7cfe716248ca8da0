import numpy as np

from emotion_analyzer.analysis.detect import DetectorSettings, FaceDetector
from emotion_analyzer.analysis.stats import RunStats
from emotion_analyzer.analysis.track import FaceTracker, MAX_MISSED, VideoFaces


def test_tracker_keeps_ids_by_overlap():
    tracker = FaceTracker()
    first = tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)])
    second = tracker.update([(205, 2, 50, 50), (3, 1, 50, 50)])
    assert [t.face_id for t in second] == [first[1].face_id, first[0].face_id]
    third = tracker.update([(400, 300, 50, 50)])  # far from both: a new face
    assert third[0].face_id not in {t.face_id for t in first}


def test_a_face_missed_by_more_than_max_missed_detections_is_dropped():
    tracker = FaceTracker()
    (face,) = tracker.update([(100, 100, 60, 60)])
    for missed in range(1, MAX_MISSED + 1):
        assert tracker.update([]) == []
        assert tracker.face_ids == {face.face_id} and tracker.seen == []  # remembered, not drawn
    tracker.update([])
    assert tracker.face_ids == set()
    (again,) = tracker.update([(100, 100, 60, 60)])
    assert again.face_id != face.face_id  # after being dropped it comes back as a new face


def test_a_face_missed_once_keeps_its_id_when_found_again():
    tracker = FaceTracker()
    (face,) = tracker.update([(100, 100, 60, 60)])
    tracker.update([])
    (back,) = tracker.update([(104, 102, 60, 60)])
    assert back.face_id == face.face_id


def test_video_faces_detect_every_nth_frame_and_apply_it_from_the_next():
    from demo_media import MovingHeads

    from emotion_analyzer.core.images import to_gray_uint8

    class Arriving(FaceDetector):
        """The first detection finds one head of the two, the later ones both."""
        calls = 0

        def detect(self, gray):
            Arriving.calls += 1
            boxes = super().detect(gray)
            return boxes[:1] if Arriving.calls == 1 else boxes

    clip = MovingHeads(speed=4, frames=7, heads=2)
    stats = RunStats()
    with VideoFaces(Arriving(DetectorSettings()), detect_every=3, follow=True) as faces:
        seen = []
        for _ in range(7):
            image = clip.read()[1]
            seen.append(len(faces.place(image, to_gray_uint8(image), stats).boxes))
            faces.take_detection(stats)
    assert Arriving.calls == 3  # frames 0, 3 and 6
    # the detection started on frame 3 is applied after it: the second head from frame 4 on
    assert seen == [1, 1, 1, 1, 2, 2, 2] and stats.stage_totals["detect"][1] == 3


def test_a_followed_box_moves_with_its_face_and_stays_without_corners():
    from demo_media import MovingHeads

    from emotion_analyzer.core.images import to_gray_uint8

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


def test_a_smaller_box_inside_a_face_is_that_face_not_a_ghost_of_its_own():
    from emotion_analyzer.analysis.track import without_nested

    face, inner, neighbour = (100, 100, 100, 100), (120, 125, 50, 50), (205, 100, 90, 90)
    assert without_nested([inner, face, neighbour]) == [1, 2]  # side by side faces both stay
    tracker = FaceTracker()
    (first,) = tracker.update([face])
    (again,) = tracker.update([inner])  # Haar's box shrinks onto part of the face for one detection
    assert again.face_id == first.face_id and {t.face_id for t in tracker.tracks} == {first.face_id}

