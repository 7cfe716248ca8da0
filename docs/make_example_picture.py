"""Remake res/analyzer_example.png, the README's picture: the analyzer's own drawing on real faces.

The faces are scikit-image's astronaut photo (public domain, installed with the test requirements), as
three heads on a backdrop; the analyzer reads them with the shipped model and its drawing is saved.

    python docs/make_example_picture.py
"""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # demo_media: frames with real faces, a test fixture


def main():
    import cv2

    from demo_media import compose_frame

    with tempfile.TemporaryDirectory() as folder:
        photo, video = Path(folder) / "faces.png", Path(folder) / "annotated.avi"
        cv2.imwrite(str(photo), compose_frame(0, faces=3)[0])
        subprocess.run([sys.executable, str(ROOT / "analyzer.py"), "--source", str(photo), "--output", str(video),
                        "--no-display"], check=True)
        ok, frame = cv2.VideoCapture(str(video)).read()
    if not ok:
        raise SystemExit("the analyzer wrote no frame")
    target = ROOT / "res" / "analyzer_example.png"
    cv2.imwrite(str(target), frame)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
