"""Remake res/analyzer_demo.gif, the README's animation: the analyzer at work on moving real faces.

The faces are scikit-image's astronaut photo (public domain, installed with the test requirements),
three heads drifting over a backdrop as in the test videos; the analyzer reads the clip with the shipped
model, its --output (what its window shows) is shrunk and saved as a looping GIF with Pillow.

    python docs/make_demo_gif.py                  # after a model change, or with --model
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demo_media: videos with real faces, a test fixture

SOURCE_FPS = 30
COLOURS = 64


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="(default: the analyzer's, the shipped model)")
    parser.add_argument("--out", type=Path, default=ROOT / "res" / "analyzer_demo.gif", help="(default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the loop (default: %(default)s)")
    parser.add_argument("--fps", type=int, default=10, help="GIF frames per second (default: %(default)s)")
    parser.add_argument("--width", type=int, default=360, help="GIF width in pixels (default: %(default)s)")
    return parser.parse_args(argv)


def annotated_frames(model, seconds):
    """The analyzer's drawing of every frame of a generated clip, as BGR arrays."""
    import cv2

    from demo_media import write_face_video

    with tempfile.TemporaryDirectory() as folder:
        clip, annotated = Path(folder) / "faces.avi", Path(folder) / "annotated.avi"
        write_face_video(clip, frames=round(seconds * SOURCE_FPS), faces=3, fps=SOURCE_FPS)
        command = [sys.executable, str(ROOT / "analyzer.py"), "--source", str(clip), "--output", str(annotated),
                   "--no-display"] + (["--model", str(model)] if model else [])
        subprocess.run(command, check=True)
        capture = cv2.VideoCapture(str(annotated))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
    if not frames:
        raise SystemExit("the analyzer wrote no frame")
    return frames


def save_gif(frames, path, fps, width):
    """Every (SOURCE_FPS / fps)-th frame, `width` pixels wide, as a looping GIF written atomically."""
    import cv2
    from PIL import Image

    step = max(1, round(SOURCE_FPS / fps))
    height = round(frames[0].shape[0] * width / frames[0].shape[1])
    images = [Image.fromarray(cv2.cvtColor(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA),
                                           cv2.COLOR_BGR2RGB)) for frame in frames[::step]]
    # One palette for every frame and no dithering, so what stays still is identical from frame to frame
    # and the GIF stores little more than what moves (a few hundred KB instead of megabytes).
    palette = images[0].quantize(colors=COLOURS, dither=Image.Dither.NONE)
    images = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    tmp = path.with_name(path.name + ".tmp.gif")
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 * step / SOURCE_FPS), loop=0,
                   optimize=True)
    tmp.replace(path)
    return len(images)


def main(argv=None):
    args = parse_args(argv)
    count = save_gif(annotated_frames(args.model, args.seconds), args.out, args.fps, args.width)
    print(f"wrote {args.out}: {count} frames, {args.out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
