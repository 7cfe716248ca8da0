"""Remake res/analyzer_demo.gif and res/analyzer_example.png, the README's pictures: the analyzer
reading real people as their expression changes.

The people are three of the London set's 102 (DeBruine & Jones 2017, Face Research Lab London Set,
CC BY 4.0; the attribution goes beside the pictures): each one's neutral photo blends into their
smiling photo and back, each at their own time, side by side in one clip. The analyzer reads the clip
as it reads a video (Haar, boxes following the faces, steady labels) and its --output, what its window
shows, is shrunk into a looping GIF with Pillow; one frame of it is the example picture. The script
then says how often each person was read neutral while neutral and happy while smiling, and warns
when the model misreads one of them (pick other --people: the demo shows the analyzer at work, its
misses are counted in docs/real_faces.md).

    python docs/make_demo_gif.py                  # after a model change, or with --model
    python docs/make_demo_gif.py --london "raw data/london-faces" --people 030 036 094
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
# Of the 675-pixel portraits: the top 40 rows and the sides cut, room left above each face for its chart.
CROP = (slice(40, 675), slice(20, 655))
PEOPLE = ("030", "036", "094")
SETTLE_SECONDS = 0.5  # a held expression is judged from this long after it is reached (labels are steady)
WARN_BELOW = 0.9


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
    parser.add_argument("--width", type=int, default=600, help="GIF width in pixels (default: %(default)s)")
    return parser.parse_args(argv)


def smile(phase):
    """How far into the smile a person is at `phase` (0-1) of their cycle: neutral, a change, smiling,
    and back."""
    ramps = ((0.25, 0.35), (0.75, 0.85))
    if phase < ramps[0][0] or phase >= ramps[1][1]:
        return 0.0
    if phase < ramps[0][1]:
        return (phase - ramps[0][0]) / (ramps[0][1] - ramps[0][0])
    if phase < ramps[1][0]:
        return 1.0
    return 1.0 - (phase - ramps[1][0]) / (ramps[1][1] - ramps[1][0])


def smile_schedule(frames, people):
    """[frame][person] how far into the smile: each person a 1/people of a cycle after the one before."""
    return [[smile((index / frames + k / people) % 1.0) for k in range(people)] for index in range(frames)]


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
        pairs.append(tuple(cv2.resize(cv2.imread(str(p))[CROP], (PANEL, PANEL), interpolation=cv2.INTER_AREA)
                           for p in photos))
    return pairs


def write_clip(pairs, path, schedule):
    """The people side by side, each blended between their two photos as `schedule` says."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), SOURCE_FPS, (PANEL * len(pairs), PANEL))
    for amounts in schedule:
        writer.write(np.hstack([cv2.addWeighted(neutral, 1.0 - amount, smiling, amount, 0.0)
                                for (neutral, smiling), amount in zip(pairs, amounts)]))
    writer.release()


def read_clip(model, clip, folder):
    """Run the analyzer on `clip`: (its drawing of every frame as BGR arrays, its CSV as a DataFrame)."""
    import cv2
    import pandas as pd

    annotated, csv = Path(folder) / "annotated.avi", Path(folder) / "faces.csv"
    command = [sys.executable, str(ROOT / "analyzer.py"), "--source", str(clip), "--output", str(annotated),
               "--csv", str(csv), "--no-display", "--quiet"] + (["--model", str(model)] if model else [])
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
    return frames, pd.read_csv(csv)


def held_readings(faces, schedule):
    """{person index: (share of held-neutral frames read neutral, share of held-smiling frames read happy)}.

    A frame counts as held when the person's blend has not changed for SETTLE_SECONDS; a face belongs to
    the panel its box's centre is in, and a held frame with no face there counts as a misreading."""
    settle = round(SETTLE_SECONDS * SOURCE_FPS)
    read = {(int(row.frame), int((row.x + row.w / 2) // PANEL)): row.emotion for row in faces.itertuples()}
    shares = {}
    for person in range(len(schedule[0])):
        counts = {"neutral": [0, 0], "happy": [0, 0]}
        for index, amounts in enumerate(schedule):
            if amounts[person] in (0.0, 1.0) and held_for(schedule, index, person) >= settle:
                expected = "happy" if amounts[person] == 1.0 else "neutral"
                counts[expected][0] += read.get((index, person)) == expected
                counts[expected][1] += 1
        shares[person] = tuple(right / max(1, total) for right, total in counts.values())
    return shares


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


def held_for(schedule, index, person):
    """How many frames up to `index` the person's blend has been what it is at `index`."""
    frames = 0
    while frames < index and schedule[index - frames - 1][person] == schedule[index][person]:
        frames += 1
    return frames


def example_frame(schedule):
    """The index of the frame that shows both expressions with every face held longest (its label settled)."""
    mixed = [index for index, amounts in enumerate(schedule) if set(amounts) == {0.0, 1.0}]
    return max(mixed or range(len(schedule)), key=lambda index: min(held_for(schedule, index, k) for k in range(len(schedule[index]))))


def save_example(frame, path):
    """`frame` as a PNG, written atomically."""
    import cv2

    tmp = path.with_name(path.name + ".tmp.png")
    cv2.imwrite(str(tmp), frame)
    tmp.replace(path)


def main(argv=None):
    """Make both pictures; return held_readings' shares by person number."""
    args = parse_args(argv)
    pairs = portraits(args.london, args.people)
    schedule = smile_schedule(round(args.seconds * SOURCE_FPS), len(pairs))
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "london.avi"
        write_clip(pairs, clip, schedule)
        frames, faces = read_clip(args.model, clip, folder)
    count = save_gif(frames, args.out, args.fps, args.width)
    save_example(frames[example_frame(schedule)], args.example)
    print(f"wrote {args.out}: {count} frames, {args.out.stat().st_size / 1024:.0f} KB; {args.example}")
    shares = {args.people[k]: share for k, share in held_readings(faces, schedule).items()}
    for person, (neutral, happy) in shares.items():
        print(f"{person}: read neutral in {neutral:.0%} of its held neutral frames, happy in {happy:.0%} of its"
              " held smiling frames")
        if min(neutral, happy) < WARN_BELOW:
            print(f"warning: the model misreads {person} (under {WARN_BELOW:.0%}): pick other --people",
                  file=sys.stderr)
    return shares


if __name__ == "__main__":
    main()
