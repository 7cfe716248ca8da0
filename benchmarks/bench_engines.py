"""Benchmark the engines that run the CNN against float32 TensorFlow Lite, in one run: time per call for
a frame's faces, and, given prepared data, accuracy on its test set and how often each engine's top
emotion is float32's.

    python benchmarks/bench_engines.py                       # 3 faces with their mirrors (the live default)
    python benchmarks/bench_engines.py --faces 1 --tta none  # one face, one view
    python benchmarks/bench_engines.py --data data           # plus accuracy on data/'s test set (prep_data.py)

The faces are crops of the astronaut photograph scikit-image ships (requirements-dev.txt).
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demo_media: real face crops, a test fixture
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from emotion_analyzer import config  # noqa: E402
from emotion_analyzer.analysis.classify import EmotionClassifier, ENGINES
from emotion_analyzer.core.views import DEFAULT_TTA, TTA_VIEWS  # noqa: E402
from emotion_analyzer.core.images import to_model_input  # noqa: E402
from demo_media import astronaut_face  # noqa: E402  (tests/demo_media.py)

BASELINE = "tflite"


def face_crops(count):
    """`count` different 48x48 crops of a real face (moved a few pixels each), as the analyzer hands them over."""
    gray = cv2.cvtColor(astronaut_face(220), cv2.COLOR_BGR2GRAY)
    return np.stack([to_model_input(gray[3 * i:200 + 3 * i, 2 * i:200 + 2 * i]) for i in range(count)])[..., None]


def ms_per_call(classifier, batch, seconds):
    """Mean milliseconds per classify() call over about `seconds` of calls."""
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        classifier.classify(batch)
        calls += 1
    return 1000 * (time.perf_counter() - started) / calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=config.DEFAULT_MODEL_PATH, help="model (default: %(default)s)")
    parser.add_argument("--faces", type=int, default=3, help="faces per call (default: %(default)s)")
    parser.add_argument("--tta", choices=tuple(TTA_VIEWS), default=DEFAULT_TTA,
                        help="test-time views per face (default: %(default)s, the live default)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="time every engine this many times, alternating; ratios are medians"
                             " (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="seconds of calls per engine per round (default: %(default)s)")
    parser.add_argument("--data", type=Path,
                        help="a folder prepared by prep_data.py: also score every engine on its test set")
    args = parser.parse_args(argv)

    from emotion_analyzer.core.model import check_model_file

    _, info = check_model_file(args.model)
    engines = [engine for engine in ENGINES if engine != "auto"]
    classifiers = {}
    for engine in engines:
        classifiers[engine] = EmotionClassifier(args.model, info["labels"], tta=args.tta, engine=engine)
        classifiers[engine].warm_up()
    auto = EmotionClassifier(args.model, info["labels"], tta=args.tta).engine_name
    print(f"model {args.model.name}; {args.faces} face(s) per call, views {args.tta}; {os.cpu_count()} CPU cores;"
          f" auto here: {auto}")

    batch = face_crops(args.faces)
    times = {engine: [] for engine in engines}
    for round_number in range(1, args.rounds + 1):
        for engine in engines:  # one after the other in each round, so drift moves all alike
            times[engine].append(ms_per_call(classifiers[engine], batch, args.seconds))
        print(f"round {round_number}: " + ", ".join(f"{engine} {times[engine][-1]:.2f} ms" for engine in engines))
    for engine in engines:
        ratio = np.median(np.array(times[BASELINE]) / np.array(times[engine]))
        print(f"{engine:12s} {np.median(times[engine]):6.2f} ms per call   {ratio:5.2f}x the speed of {BASELINE}"
              f" ({classifiers[engine].engine_name})")

    if args.data:
        from emotion_analyzer.data.prepared import load_prepared

        _, _, x_test, y_test, _, _ = load_prepared(args.data)
        predictions = {engine: np.concatenate([classifiers[engine].classify(x_test[i:i + 64])
                                               for i in range(0, len(x_test), 64)]).argmax(axis=1)
                       for engine in engines}
        print(f"test set of {args.data}: {len(y_test):,} faces, views {args.tta}")
        for engine in engines:
            print(f"{engine:12s} accuracy {(predictions[engine] == y_test).mean():.2%}; same top emotion as"
                  f" {BASELINE}: {(predictions[engine] == predictions[BASELINE]).mean():.2%}")


if __name__ == "__main__":
    main()
