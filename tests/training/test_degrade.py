"""The camera degradations of the `real` augmentation, on a real face, and why brightness, contrast
and gamma are left out of it."""

import cv2
import numpy as np
import pytest

from emotion_analyzer.training.degrade import blur, degrade, DEGRADE_CHANCE, jpeg, noise
from emotion_analyzer.core.images import equalize


@pytest.fixture(scope="module")
def face():
    """The astronaut's face from scikit-image's sample photo, as a 48x48 analyzer crop."""
    from skimage import data

    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray[30:230, 140:340], (48, 48), interpolation=cv2.INTER_AREA)


def high_frequency_energy(image):
    return float(np.abs(cv2.Laplacian(image.astype(np.float32), cv2.CV_32F)).mean())


def test_equalizing_undoes_brightness_contrast_and_gamma(face):
    reference = equalize(face).astype(int)
    changed = {"brighter": np.clip(face.astype(int) + 30, 0, 255),
               "less contrast": 128 + (face.astype(int) - 128) * 0.6,
               "gamma 1.5": 255 * (face / 255.0) ** 1.5}
    for name, image in changed.items():
        after = equalize(np.clip(np.rint(image), 0, 255).astype(np.uint8)).astype(int)
        # Only grey levels merged by rounding or clipping differ; the picture is the same.
        assert np.abs(after - reference).mean() < 4, name
    assert np.abs(equalize(255 - face).astype(int) - reference).mean() > 60  # not a function that ignores input


def test_each_degradation_does_what_it_says(face):
    rng = np.random.default_rng(0)
    assert high_frequency_energy(blur(face, rng)) < 0.7 * high_frequency_energy(face)
    noisy = noise(face, rng)
    assert noisy.dtype == np.uint8 and 1.5 < (noisy.astype(float) - face).std() < 9
    compressed = jpeg(face, rng)
    assert compressed.shape == face.shape and 0 < np.abs(compressed.astype(int) - face).mean() < 12


def test_degrade_strikes_about_its_chance_of_faces_and_leaves_the_input_alone(face):
    faces = np.repeat(face[np.newaxis, :, :, np.newaxis], 400, axis=0)
    kept = faces.copy()
    out = degrade(faces, np.random.default_rng(1))
    assert np.array_equal(faces, kept) and out.shape == faces.shape and out.dtype == np.uint8
    untouched = np.mean([np.array_equal(a, face[:, :, np.newaxis]) for a in out])
    assert untouched == pytest.approx((1 - DEGRADE_CHANCE) ** 3, abs=0.07)
