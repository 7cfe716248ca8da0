"""Benchmark one EmotionRecognizer shared by threads (its calls take turns) against one recognizer per
thread (calls side by side), on the same photos, in one run: photos per second and the ratio.

    python benchmarks/bench_shared_recognizer.py --threads 4 --photos 40
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demo_media: photos with real faces, a test fixture
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def photos_per_second(recognizers, photos, threads):
    """Each of `threads` threads reads all `photos` with recognizers[i % len(recognizers)]."""
    def work(index):
        recognizer = recognizers[index % len(recognizers)]
        for photo in photos:
            recognizer.detect_emotions(photo)
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * len(photos) / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=4, help="threads asking at once (default: %(default)s)")
    parser.add_argument("--photos", type=int, default=20, help="photos each thread reads per round"
                                                               " (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median ratio is reported"
                                                              " (default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.threads, args.photos, args.rounds) < 1:
        parser.error("--threads, --photos and --rounds must be positive")

    from demo_media import compose_frame

    from emotion_analyzer import EmotionRecognizer
    from emotion_analyzer.analysis.stats import peak_rss_mb

    photos = [compose_frame(i, faces=1 + i % 3)[0] for i in range(args.photos)]
    shared = [EmotionRecognizer()]
    rss_shared = peak_rss_mb()
    own = shared + [EmotionRecognizer() for _ in range(args.threads - 1)]
    rss_own = peak_rss_mb()
    for recognizer in own:
        recognizer.detect_emotions(photos[0])  # warm every engine before timing
    ratios = []
    for number in range(1, args.rounds + 1):
        shared_rate = photos_per_second(shared, photos, args.threads)
        own_rate = photos_per_second(own, photos, args.threads)
        ratios.append(shared_rate / own_rate)
        print(f"round {number}: shared (turns) {shared_rate:.1f} photos/s, one per thread {own_rate:.1f} photos/s")
    ratios.sort()
    print(f"{args.threads} threads, {os.cpu_count()} CPU cores; peak RSS {rss_shared:.0f} MB with one recognizer,"
          f" {rss_own:.0f} MB with {args.threads}")
    print(f"ratio: a shared recognizer reads {ratios[len(ratios) // 2]:.2f}x the photos/s of one per thread")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
