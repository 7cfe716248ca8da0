"""Remake res/analyzer_demo.gif and res/analyzer_example.png, the README's pictures: the analyzer
reading real people as their expression changes.

The people are three of the London set's 102 (DeBruine & Jones 2017, Face Research Lab London Set,
CC BY 4.0; the attribution goes beside the pictures): each one's neutral photo blends into their
smiling photo and back, each at its own time, side by side in one clip. The analyzer reads the clip
with the shipped model (its video path: Haar, tracking, smoothing), and its --output (what its window
shows) is shrunk into a looping GIF with Pillow; one frame of it is the example picture.

    python docs/make_demo_gif.py                  # after a model change, or with --model
    python docs/make_demo_gif.py --london "raw data/london-faces" --people 005 019 041
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SOURCE_FPS = 30
COLOURS = 96
PANEL = 320  # pixels a side of each person's square in the clip
# Three people whose neutral and smiling photos the shipped model both reads right (docs/results.md
# has the London figures for all 102): the demo shows the analyzer at work, its misses are counted there.
PEOPLE = ("005", "019", "041")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="(default: the analyzer's, the shipped model)")
    parser.add_argument("--london", type=Path, default=ROOT / "raw data" / "london-faces",
                        help="the London set, extracted (default: %(default)s)")
    parser.add_argument("--people", nargs="+", default=PEOPLE, help="their numbers (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "res" / "analyzer_demo.gif", help="(default: %(default)s)")
    parser.add_argument("--example", type=Path, default=ROOT / "res" / "analyzer_example.png",
                        help="one frame of it as a still (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of the loop (default: %(default)s)")
    parser.add_argument("--fps", type=int, default=8, help="GIF frames per second (default: %(default)s)")
    parser.add_argument("--width", type=int, default=480, help="GIF width in pixels (default: %(default)s)")
    return parser.parse_args(argv)


def smile(phase):
    """How far into the smile a person is at `phase` (0-1) of their cycle: neutral, a second's change,
    smiling, and back."""
    ramps = ((0.25, 0.4), (0.75, 0.9))
    if phase < ramps[0][0] or phase >= ramps[1][1]:
        return 0.0
    if phase < ramps[0][1]:
        return (phase - ramps[0][0]) / (ramps[0][1] - ramps[0][0])
    if phase < ramps[1][0]:
        return 1.0
    return 1.0 - (phase - ramps[1][0]) / (ramps[1][1] - ramps[1][0])


def portraits(london, people):
    """[(neutral, smiling)] BGR photos, PANEL pixels a side, of each person."""
    import cv2

    pairs = []
    for person in people:
        photos = [london / kind / f"{person}_{shot}.jpg" for kind, shot in (("neutral", "03"), ("happy", "08"))]
        missing = [str(p) for p in photos if not p.is_file()]
        if missing:
            raise SystemExit(f"{missing[0]} not found: extract ../shared/datasets/london-faces.tar.gz into"
                             f" {london.parent} (or pass --london), and pick --people that are in it")
        pairs.append(tuple(cv2.resize(cv2.imread(str(p)), (PANEL, PANEL), interpolation=cv2.INTER_AREA)
                           for p in photos))
    return pairs


def write_clip(pairs, path, seconds):
    """The people side by side, each blending from neutral to smiling and back a third of a cycle
    after the one before."""
    import cv2
    import numpy as np

    frames = round(seconds * SOURCE_FPS)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), SOURCE_FPS, (PANEL * len(pairs), PANEL))
    for index in range(frames):
        panels = []
        for k, (neutral, smiling) in enumerate(pairs):
            amount = smile((index / frames + k / len(pairs)) % 1.0)
            panels.append(cv2.addWeighted(neutral, 1.0 - amount, smiling, amount, 0.0))
        writer.write(np.hstack(panels))
    writer.release()


def annotated_frames(model, clip):
    """The analyzer's drawing of every frame of `clip`, as BGR arrays."""
    import cv2

    with tempfile.TemporaryDirectory() as folder:
        annotated = Path(folder) / "annotated.avi"
        command = [sys.executable, str(ROOT / "analyzer.py"), "--source", str(clip), "--output", str(annotated),
                   "--no-display", "--quiet"] + (["--model", str(model)] if model else [])
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
    # and the GIF stores little more than what changes.
    palette = images[0].quantize(colors=COLOURS, dither=Image.Dither.NONE)
    images = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    tmp = path.with_name(path.name + ".tmp.gif")
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 * step / SOURCE_FPS), loop=0,
                   optimize=True)
    tmp.replace(path)
    return len(images)


def save_example(frames, path):
    """The frame two thirds into the loop (one person smiling, one changing, one neutral), as a PNG."""
    import cv2

    tmp = path.with_name(path.name + ".tmp.png")
    cv2.imwrite(str(tmp), frames[len(frames) * 2 // 3])
    tmp.replace(path)


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "london.avi"
        write_clip(portraits(args.london, args.people), clip, args.seconds)
        frames = annotated_frames(args.model, clip)
    count = save_gif(frames, args.out, args.fps, args.width)
    save_example(frames, args.example)
    print(f"wrote {args.out}: {count} frames, {args.out.stat().st_size / 1024:.0f} KB; {args.example}")


if __name__ == "__main__":
    main()
