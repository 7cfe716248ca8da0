"""Reading face images from disk: format checks that catch truncated files, grayscale at 48x48."""

import os
from pathlib import Path

import cv2
import numpy as np

from emotion_analyzer.common.fileio import printable
from emotion_analyzer.config import IMAGE_EXTENSIONS, IMAGE_SIZE


class BadImage(Exception):
    """An image file that cannot be used; the message says why."""


def is_image_name(path):
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(folder):
    """Image files directly inside `folder`, sorted by name; other files are returned separately."""
    images, others = [], []
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and not path.name.startswith("."):
            (images if is_image_name(path) else others).append(path)
    return images, others


def files_under(folder):
    """Every file under `folder`, in its subfolders too (a subfolder that is a symbolic link, another disk
    say, followed once), sorted by path; hidden files and folders (macOS ._x.jpg, .git/) left out."""
    found, seen = [], set()
    for root, folders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree: read once
            folders[:] = []
            continue
        seen.add(real)
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [Path(root) / name for name in files if not name.startswith(".")]
    return sorted(path for path in found if path.is_file())


def photo_name(path, folder=None):
    """How a photo is named in results: its path under the folder it was found in (happy/001.jpg), else
    its file name, printable whatever bytes the name has."""
    return printable(Path(path).relative_to(folder).as_posix() if folder else Path(path).name)


def image_files_under(folder):
    """Every image file under `folder` (files_under), sorted by path."""
    return [path for path in files_under(folder) if is_image_name(path)]


def jpeg_end(data):
    """The offset just past a JPEG's end-of-image marker, or None when the image is cut short.

    Walks the marker segments and the entropy-coded scans, where 0xFF is always followed by 0x00 or
    a restart marker, so an EXIF thumbnail's own end marker is skipped and bytes after the real end
    (a phone's motion-photo video) are allowed.
    """
    position, size = 2, len(data)
    while position + 2 <= size:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xD9:
            return position + 2
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill byte or markers with no length
            position += 1 if marker == 0xFF else 2
            continue
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xDA:  # a scan: its coded data runs to the next marker that is not 0x00 or a restart
            while True:
                position = data.find(b"\xff", position)
                if position < 0 or position + 1 >= size:
                    return None
                following = data[position + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    position += 2
                    continue
                break
    return None


def _check_complete(path, data):
    # OpenCV decodes a JPEG cut short with only a warning and grey padding, so look for the
    # end-of-image marker ourselves; likewise a PNG must end with its IEND chunk.
    suffix = Path(path).suffix.lower()
    if suffix in (".jpg", ".jpeg") and (data[:2] != b"\xff\xd8" or jpeg_end(data) is None):
        raise BadImage("truncated JPEG (no end-of-image marker)")
    if suffix == ".png" and b"IEND" not in data[-16:]:
        raise BadImage("truncated PNG (no IEND chunk)")


def decode_image_bytes(path, data):
    """Decode file contents to an array (gray or BGR, 8 or 16 bits) turned upright as its EXIF
    orientation says (phones store sideways photos with a tag); raise BadImage if unusable."""
    if len(data) == 0:
        raise BadImage("empty file (0 bytes)")
    _check_complete(path, data)
    # Any depth and colour as stored, like IMREAD_UNCHANGED, which alone ignores the EXIF orientation.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if image is None or image.size == 0:
        raise BadImage("not a readable image")
    return image


# The pixel types an image array may hold: what OpenCV decodes (8 and 16 bits) and floats.
PIXEL_TYPES = (np.uint8, np.uint16, np.float32, np.float64)


def unreadable_pixels(image):
    """Why an image array's pixels cannot be read (its type, NaN or infinite values), or None."""
    if image.dtype not in PIXEL_TYPES:
        return (f"pixels of type {image.dtype}: expected uint8 or uint16 (as cv2.imread gives), or float32 or"
                " float64")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        return "NaN or infinite pixels: a face cannot be read from them"
    return None


def to_uint8(image):
    """Any decoded frame or image (8-bit, 16-bit or float) in 8 bits, its channels as they are."""
    if image.dtype == np.uint16:
        # 16-bit files, and 10- or 12-bit camera data stored in 16 bits, scaled by the bits the data uses.
        shift = max(int(image.max()).bit_length() - 8, 0)
        return (image >> shift).astype(np.uint8)
    if image.dtype != np.uint8:
        return np.rint(cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX)).astype(np.uint8)
    return image


def to_gray_uint8(image):
    """Any decoded frame or image (gray, BGR, BGRA; 8-bit, 16-bit or float) as 8-bit grayscale."""
    image = to_uint8(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def to_model_input(gray):
    """A grayscale face crop resized to the model's square input size."""
    if gray.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE):
        return gray
    interpolation = cv2.INTER_AREA if min(gray.shape[:2]) > IMAGE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(gray, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interpolation)


def equalize(faces):
    """Histogram-equalized copies of uint8 face crops, one (H, W) crop or a batch (N, H, W[, 1]): how
    the analyzer reads a face and how the model is trained and tested on one, so all three agree."""
    faces = np.asarray(faces, dtype=np.uint8)
    if faces.ndim == 2:
        return cv2.equalizeHist(faces)
    return np.stack([cv2.equalizeHist(face.reshape(face.shape[:2])).reshape(face.shape) for face in faces])


def read_image_file(path):
    """An image file decoded as decode_image_bytes does; BadImage with the reason when it cannot be
    read (missing, a folder, unreadable) or used."""
    path = Path(path)
    if path.is_dir():
        raise BadImage("is a folder, not an image")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadImage("no such image file") from None
    except OSError as exc:
        raise BadImage(f"cannot read ({exc.strerror})") from None
    return decode_image_bytes(path, data)


def read_face_image(path):
    """Read an image file as a 48x48 uint8 grayscale array.

    Returns (array, converted) where converted says the file was colour or another size.
    Raises BadImage with the reason when the file cannot be used.
    """
    image = read_image_file(path)
    converted = image.ndim == 3 or image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE)
    return to_model_input(to_gray_uint8(image)), converted


def check_image_file(path):
    """None if `path` is a usable image, else the reason it is not."""
    try:
        read_image_file(path)
    except BadImage as exc:
        return str(exc)
    return None
