"""Benchmark the analyzer's start: how long a 1-frame video takes from the command to its answer (the
first frame), with the CNN's TensorFlow Lite copy cached and without, against `python -c "import
tensorflow"` in the same run, and how long a source that cannot be read takes to be told.

    python benchmarks/bench_startup.py              # 3 rounds, alternating
    python benchmarks/bench_startup.py --rounds 5

Each start is a process of its own, as a user's. The machine's speed drifts, so every round runs each
case once, in turn, and the ratios are of medians. Results: docs/benchmarks.md.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demo_media: a video of real faces, a test fixture


def timed(command, env):
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, done


def cases(folder, python):
    """(name, command, whether the cache is emptied first, the exit code expected)."""
    analyzer = [python, str(ROOT / "analyzer.py"), "--no-display", "--quiet"]
    video = ["--source", str(folder / "one_frame.avi"), "--csv", str(folder / "out.csv")]
    return [("import tensorflow (baseline)", [python, "-c", "import tensorflow"], False, 0),
            ("first frame, model not yet converted", analyzer + video, True, 0),
            ("first frame, converted copy cached", analyzer + video, False, 0),
            ("a missing camera told", analyzer + ["--source", "57"], False, 2)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="times each case runs (default: %(default)s)")
    args = parser.parse_args(argv)

    from demo_media import write_face_video

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        write_face_video(folder / "one_frame.avi", frames=1)
        cache = folder / "cache"
        env = {**os.environ, "EMOTION_ANALYZER_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
        times = {}
        for round_ in range(args.rounds):
            for name, command, empty_cache, expected in cases(folder, sys.executable):
                if empty_cache:
                    for path in cache.glob("*"):
                        path.unlink()
                seconds, done = timed(command, env)
                if done.returncode != expected:
                    sys.exit(f"{name}: exit {done.returncode}, expected {expected}: {done.stderr[-500:]}")
                times.setdefault(name, []).append(seconds)
            print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{t[-1]:.2f} s" for t in times.values()))
    baseline = statistics.median(times["import tensorflow (baseline)"])
    print(f"\n{os.cpu_count()} CPU cores; medians of {args.rounds} rounds, ratio to `import tensorflow`:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:40s} {median:6.2f} s  {median / baseline:5.2f}x")


if __name__ == "__main__":
    main()
