import io

import numpy as np
import pytest

from demo_media import face_like, write_image
from emotion_analyzer.core.images import BadImage, decode_image_bytes, jpeg_end


def jpeg_bytes(image, **options):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_a_sideways_phone_photo_is_read_upright(tmp_path):
    from PIL import Image

    from emotion_analyzer.core.images import read_face_image


    # A face-like picture, wider than tall, stored rotated with an EXIF tag saying how to turn it back.
    upright = np.zeros((80, 120), np.uint8)
    upright[10:30, 20:100] = 255  # a bright band near the top
    stored = Image.fromarray(upright).rotate(90, expand=True)  # as a phone held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    face, _ = read_face_image(path)
    expected, _ = read_face_image(write_image(tmp_path / "upright.png", upright))
    assert np.abs(face.astype(int) - expected.astype(int)).mean() < 3


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"exif": b"Exif\x00\x00" + b"\xff\xd9" * 8}])
def test_a_jpeg_with_bytes_after_its_end_is_read_and_one_cut_short_is_refused(options):
    face = face_like(2, seed=7, size=96)
    data = jpeg_bytes(face, **options)
    assert jpeg_end(data) == len(data)
    motion_photo = data + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40  # a phone's video after the end
    np.testing.assert_array_equal(decode_image_bytes("motion.jpg", motion_photo), decode_image_bytes("x.jpg", data))
    with pytest.raises(BadImage, match="truncated JPEG"):
        decode_image_bytes("cut.jpg", data[: len(data) // 2])
