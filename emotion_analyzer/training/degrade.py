"""What a webcam or a web photo does to a face that FER2013's faces rarely show: blur, JPEG blocks and
sensor noise, drawn at random for training images (the `real` augmentation).

Brightness, contrast and gamma are not here: every face the model reads is histogram-equalized
(images.equalize), which maps any monotonic change of grey levels back to the same picture, so they
would only cost time (tests/test_degrade.py shows it).
"""

import cv2
import numpy as np

# Each degradation strikes a training image with this chance, independently of the others.
DEGRADE_CHANCE = 0.3
BLUR_SIGMA = (0.4, 1.2)        # pixels of the 48x48 crop: an out-of-focus or moving face
JPEG_QUALITY = (30, 90)        # web photos and video frames; 30 shows blocks plainly
NOISE_SIGMA = (2.0, 8.0)       # grey levels: a webcam sensor in dim light


def blur(face, rng):
    return cv2.GaussianBlur(face, (0, 0), rng.uniform(*BLUR_SIGMA))


def jpeg(face, rng):
    ok, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*JPEG_QUALITY))])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else face


def noise(face, rng):
    noisy = face + rng.normal(0.0, rng.uniform(*NOISE_SIGMA), face.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


DEGRADATIONS = (blur, noise, jpeg)  # in a camera's order: the lens, the sensor, then compression


def degrade(faces, rng):
    """Copies of uint8 faces (N, H, W, 1), each struck by each degradation with DEGRADE_CHANCE."""
    out = np.array(faces, dtype=np.uint8, copy=True)
    for face in out:
        plane = face[:, :, 0]
        for step in DEGRADATIONS:
            if rng.random() < DEGRADE_CHANCE:
                plane[:] = step(np.ascontiguousarray(plane), rng)
    return out
