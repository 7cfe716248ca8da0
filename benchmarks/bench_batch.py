"""Benchmark a folder of videos: files per hour read by analyzer.py --csv-dir with 1 worker, with
--workers N and (when Ray is installed) on a local Ray cluster with N actors, side by side in one run,
each from a clean output folder, and the ratios to 1 worker.

    python benchmarks/bench_batch.py --clips 8 --frames 90 --workers 2
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demo_media: videos with real faces, a test fixture


def timed_run(folder, out, *extra):
    """Seconds for one analyzer.py --csv-dir run in a process of its own, as a user runs it."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "analyzer.py"), "--source", str(folder), "--csv-dir", str(out),
                    *extra], check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="clips in the folder (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=90, help="frames per clip, 640x480 (default: %(default)s)")
    parser.add_argument("--faces", type=int, default=2, help="faces per clip (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="workers and Ray actors (default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.clips, args.frames, args.faces, args.workers) < 1:
        parser.error("--clips, --frames, --faces and --workers must be positive")

    from demo_media import write_face_video

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "clips"
        folder.mkdir()
        for index in range(args.clips):
            write_face_video(folder / f"clip{index}.avi", frames=args.frames, faces=args.faces)
        variants = {"1 worker": ["--workers", "1"], f"{args.workers} workers": ["--workers", str(args.workers)]}
        if importlib.util.find_spec("ray"):
            variants[f"Ray, {args.workers} actors"] = ["--ray", "auto", "--workers", str(args.workers)]
        else:
            print("Ray is not installed (pip install .[ray]): its row is left out")
        rates = {}
        for name, extra in variants.items():
            seconds = timed_run(folder, Path(scratch) / name.replace(" ", "_").replace(",", ""), *extra)
            rates[name] = args.clips * 3600 / seconds
            print(f"{name}: {args.clips} clips of {args.frames} frames in {seconds:.1f} s:"
                  f" {rates[name]:.0f} files/hour", flush=True)
    base = rates["1 worker"]
    print(f"{os.cpu_count()} CPU cores; each run starts its own processes (model loading included)")
    for name, rate in rates.items():
        print(f"ratio: {name} reads {rate / base:.2f}x the files/hour of 1 worker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
