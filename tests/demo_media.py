"""Videos and images with real faces in them, for tests, benchmarks and demos.

The face is the astronaut photograph that scikit-image ships (`skimage.data.astronaut()`), so nothing is
downloaded; scikit-image is a test requirement, not a runtime one. Also the generated faces a model can
learn (face_like), and writing and snapshotting files as tests need.
"""

from pathlib import Path

import cv2
import numpy as np

from emotion_analyzer.analysis.capture import Reader

# Where the astronaut's face is in the 512x512 photo, with some margin so the cascade sees a head.
FACE_REGION = (150, 35, 150, 150)  # x, y, w, h
FACE_IN_REGION = (27, 31, 95, 95)  # the detected face box inside that region


def astronaut_face(size):
    """A size x size BGR crop of the astronaut's head."""
    from skimage import data

    rgb = data.astronaut()
    x, y, w, h = FACE_REGION
    crop = cv2.cvtColor(rgb[y:y + h, x:x + w], cv2.COLOR_RGB2BGR)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def background(width, height, seed=0):
    """A smooth, faceless backdrop with a little noise."""
    rng = np.random.default_rng(seed)
    gradient = np.linspace(60, 160, width, dtype=np.float32)[np.newaxis, :].repeat(height, axis=0)
    noise = rng.normal(0, 6, (height, width)).astype(np.float32)
    gray = np.clip(gradient + noise, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def face_positions(frame_index, faces, width, height, size):
    """Top-left corners of `faces` heads drifting slowly in a row."""
    positions = []
    for k in range(faces):
        cx = (k + 0.5) * width / faces - size / 2
        dx = 12 * np.sin(frame_index / 15 + k)
        dy = 8 * np.cos(frame_index / 20 + k)
        x = int(np.clip(cx + dx, 0, width - size))
        y = int(np.clip(height / 2 - size / 2 + dy, 0, height - size))
        positions.append((x, y))
    return positions


def compose_frame(frame_index, faces=3, width=640, height=480, size=150, backdrop=None):
    """A BGR frame with `faces` heads; returns (frame, expected face boxes x, y, w, h)."""
    frame = (backdrop if backdrop is not None else background(width, height)).copy()
    head = astronaut_face(size) if faces else None
    scale = size / FACE_REGION[2]
    fx, fy, fw, fh = (int(round(v * scale)) for v in FACE_IN_REGION)
    boxes = []
    for x, y in face_positions(frame_index, faces, width, height, size):
        frame[y:y + size, x:x + size] = head
        boxes.append((x + fx, y + fy, fw, fh))
    return frame, boxes


def write_face_video(path, frames=60, faces=3, width=640, height=480, size=150, fps=30.0):
    """An .avi (MJPG) or .mp4 video of drifting heads; returns the expected boxes per frame."""
    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    backdrop = background(width, height)
    expected = []
    try:
        for index in range(frames):
            frame, boxes = compose_frame(index, faces, width, height, size, backdrop)
            writer.write(frame)
            expected.append(boxes)
    finally:
        writer.release()
    return expected


MOVING_FPS, MOVING_WIDTH, MOVING_HEIGHT, MOVING_HEAD = 30.0, 640, 480, 130


class MovingHeads(Reader):
    """Heads moving in straight lines at `speed` pixels a frame, bouncing off the edges, with sensor noise,
    as a video reader the analyzer takes; `frames` keeps each frame's image."""

    def __init__(self, speed, frames, heads=3, seed=0):
        self.rng = np.random.default_rng(seed)
        self.head = astronaut_face(MOVING_HEAD)
        self.backdrop = background(MOVING_WIDTH, MOVING_HEIGHT, seed)
        angles = (0.3, 2.2, 4.1)[:heads]
        self.positions = np.array([(60.0 + 200 * k, 60.0 + 80 * k) for k in range(heads)])
        self.velocities = speed * np.array([(np.cos(a), np.sin(a)) for a in angles])
        super().__init__()
        self.fps, self.frame_count = MOVING_FPS, frames
        self.frames = []

    def _move(self):
        self.positions += self.velocities
        for axis, limit in ((0, MOVING_WIDTH - MOVING_HEAD), (1, MOVING_HEIGHT - MOVING_HEAD)):
            out = (self.positions[:, axis] < 0) | (self.positions[:, axis] > limit)
            self.velocities[out, axis] *= -1
            self.positions[:, axis] = np.clip(self.positions[:, axis], 0, limit)

    def read(self):
        if self.position >= self.frame_count:
            return None
        frame = self.backdrop.copy()
        for x, y in self.positions.round().astype(int):
            frame[y:y + MOVING_HEAD, x:x + MOVING_HEAD] = self.head
        noisy = np.clip(frame + self.rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        self.frames.append(noisy)
        index, self.position = self.position, self.position + 1
        self._move()
        return index, noisy, "moving heads"


def face_like(label, seed, size=48, channels=1):
    """A 48x48 image whose pattern depends on the label (so a model can learn it) plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = 128 + 60 * np.sin((xx * (label + 1) + yy * (label % 3)) / 6.0)
    image = np.clip(base + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
    if channels == 3:
        return cv2.merge([image, image // 2, 255 - image])
    return image


def write_image(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def tree_snapshot(root):
    """{relative path: bytes} of every file, to prove a folder was not touched."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def write_vfr_video(path, times_s, faces=1):
    """A video of heads whose frames have their own timestamps (`times_s`, seconds), as phones record
    variable frame rates; written with PyAV (a test requirement), since OpenCV writes constant rates."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height = 640, 480
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for index, seconds in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(compose_frame(index, faces=faces)[0], format="bgr24")
            frame.pts, frame.time_base = round(seconds * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
