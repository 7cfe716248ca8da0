import numpy as np
import pytest

from emotion_analyzer.analysis.smoothing import FaceSmoothers, LabelSmoother, Smoothing

NEUTRAL, HAPPY = 3, 2


def probabilities(leader, share=0.7):
    p = np.full(6, (1 - share) / 5, np.float32)
    p[leader] = share
    return p


def switch_time(fps, change_at=2.0, settings=Smoothing()):
    """When the shown label follows a clean change from neutral to happy at `change_at` seconds."""
    smoother = LabelSmoother(settings)
    for frame in range(int(4 * fps)):
        t = frame / fps
        _, shown = smoother.update(probabilities(HAPPY if t >= change_at else NEUTRAL), t)
        if shown == HAPPY:
            return t - change_at
    return None


@pytest.mark.parametrize("fps", [15, 30, 60])
def test_a_real_change_shows_within_half_a_second_at_any_frame_rate(fps):
    delay = switch_time(fps)
    assert delay is not None and delay <= 0.5
    # Defined in seconds, not frames: the same delay at every frame rate, to within a frame.
    assert abs(delay - switch_time(60)) <= 1 / fps + 1e-6


def test_a_flickering_reading_keeps_its_label():
    smoother = LabelSmoother(Smoothing())
    rng = np.random.default_rng(0)
    shown_labels = []
    for frame in range(300):  # 10 s at 30 frames/s: neutral mostly, happy on a third of the frames at random
        leader = HAPPY if rng.random() < 0.33 else NEUTRAL
        shown_labels.append(smoother.update(probabilities(leader, 0.6), frame / 30)[1])
    assert set(shown_labels) == {NEUTRAL}


def test_a_blip_shorter_than_the_hold_does_not_switch_the_label():
    smoother = LabelSmoother(Smoothing(seconds=0.01, margin=0.1, hold=0.3))  # almost no averaging
    readings = [NEUTRAL] * 30 + [HAPPY] * 6 + [NEUTRAL] * 30  # 0.2 s of happy at 30 frames/s
    shown = [smoother.update(probabilities(leader), i / 30)[1] for i, leader in enumerate(readings)]
    assert set(shown) == {NEUTRAL}


def test_without_settings_every_frame_shows_as_it_comes():
    smoother = LabelSmoother(None)
    for i, leader in enumerate([NEUTRAL, HAPPY, NEUTRAL]):
        smoothed, shown = smoother.update(probabilities(leader), i / 30)
        assert shown == leader and np.array_equal(smoothed, probabilities(leader))


def test_each_face_keeps_its_own_smoothing_and_forgotten_faces_start_afresh():
    smoothers = FaceSmoothers(Smoothing(seconds=0.1))
    one_hot = np.eye(6)
    smoothers.update([1, 2], [one_hot[0], one_hot[1]], 0.0, remembered={1, 2})
    (moved, shown), (kept, _) = smoothers.update([1, 2], [one_hot[2], one_hot[1]], 0.1, remembered={1, 2})
    weight = 1 - np.exp(-1)  # one time constant later
    np.testing.assert_allclose(moved, one_hot[0] + weight * (one_hot[2] - one_hot[0]), rtol=1e-6)
    assert shown == 0  # the new leader has not led for long enough to be shown
    np.testing.assert_allclose(kept, one_hot[1])
    smoothers.update([2], [one_hot[1]], 0.2, remembered={2})  # face 1 was dropped by the tracker
    ((fresh, shown),) = smoothers.update([1], [one_hot[2]], 0.3, remembered={1, 2})
    np.testing.assert_allclose(fresh, one_hot[2])
    assert shown == 2
