"""The real window, drawn under a virtual display (Xvfb) and checked with a screenshot."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from demo_media import write_image
from demo_media import compose_frame
from emotion_analyzer.analysis.draw import COLOURS

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None,
                                reason="Xvfb is not installed (apt-get install xvfb) so no window can be drawn")


@pytest.fixture
def virtual_display():
    for number in range(99, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(f"/tmp/.X{number}-lock"):
            break
    display = f":{number}"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
        if time.time() > deadline or server.poll() is not None:
            server.kill()
            pytest.skip(f"Xvfb did not start on {display}")
        time.sleep(0.1)
    yield display
    server.terminate()
    server.wait(timeout=10)


def count_colour(pixels, rgb, tolerance=3):
    return int((np.abs(pixels.astype(int) - np.array(rgb)).max(axis=2) <= tolerance).sum())


def annotation_counts(shot, box_colours):
    """(green FPS-text pixels, pixels of the most common box colour) in a screenshot."""
    status_text = count_colour(shot, (0, 255, 0), tolerance=90)  # thin anti-aliased FPS text
    return status_text, max(count_colour(shot, colour) for colour in box_colours)


def test_window_shows_boxes_labels_and_fps(virtual_display, fresh_model, tmp_path, project_root):
    from PIL import Image, ImageGrab

    # A still photo stays on screen until the window is closed, so what is drawn does not depend on how
    # fast this machine plays a video: screenshots are taken until it appears (the deadline only guards
    # against a hang), then SIGTERM ends the analyzer as a closed window would.
    photo = write_image(tmp_path / "three_faces.png", compose_frame(0, faces=3)[0])
    command = [sys.executable, str(project_root / "analyzer.py"), "--source", str(photo), "--model", str(fresh_model)]
    env = {**os.environ, "DISPLAY": virtual_display, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    box_colours = [tuple(reversed(bgr)) for bgr in COLOURS.values()]
    found = shot = None
    screenshots = 0
    best = (0, 0)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and process.poll() is None:
            shot = np.asarray(ImageGrab.grab(xdisplay=virtual_display).convert("RGB"))
            screenshots += 1
            status_text, boxes = annotation_counts(shot, box_colours)
            best = max(best[0], status_text), max(best[1], boxes)
            if status_text > 50 and boxes > 300:
                found = shot
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    saved = ""
    if found is None and shot is not None:
        Image.fromarray(shot).save(tmp_path / "last_screenshot.png")
        saved = f"; the last is {tmp_path / 'last_screenshot.png'}"
    assert found is not None, (
        f"no annotated frame seen on the display in {screenshots} screenshots{saved} (most FPS-text pixels"
        f" {best[0]}, most box pixels {best[1]}); analyzer said: {out[-1000:]} {err[-1000:]}")
    # the window holds the 640x480 photo: most of the screen outside it stays black
    assert (found.sum(axis=2) > 0).sum() >= 640 * 480 * 0.9
    assert process.returncode == 128 + signal.SIGTERM  # ended cleanly by the signal, no traceback
    assert "Traceback" not in err
