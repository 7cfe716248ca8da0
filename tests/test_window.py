"""The real window, drawn under a virtual display (Xvfb) and checked with a screenshot."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from emotion_analyzer.demo_media import write_face_video
from emotion_analyzer.draw import COLOURS

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


def test_window_shows_boxes_labels_and_fps(virtual_display, fresh_model, tmp_path):
    from PIL import Image, ImageGrab

    video = tmp_path / "faces.avi"
    # 30 s at 30 fps, played in real time: the window stays up long after start-up, even on a slow machine;
    # the analyzer is stopped as soon as an annotated frame is seen.
    write_face_video(video, frames=900, faces=3)
    command = [sys.executable, str(ROOT / "analyzer.py"), "--source", str(video), "--model", str(fresh_model),
               "--realtime"]
    env = {**os.environ, "DISPLAY": virtual_display, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    box_colours = [tuple(reversed(bgr)) for bgr in COLOURS.values()]
    found = last_lit = None
    screenshots = lit = 0
    best = (0, 0)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and process.poll() is None:
            shot = np.asarray(ImageGrab.grab(xdisplay=virtual_display).convert("RGB"))
            screenshots += 1
            status_text, boxes = annotation_counts(shot, box_colours)
            best = max(best[0], status_text), max(best[1], boxes)
            if shot.any():
                lit, last_lit = lit + 1, shot
            if status_text > 50 and boxes > 300:
                found = shot
                break
            time.sleep(0.2)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    saved = ""
    if found is None and last_lit is not None:
        Image.fromarray(last_lit).save(tmp_path / "last_lit_screenshot.png")
        saved = f"; the last of them is {tmp_path / 'last_lit_screenshot.png'}"
    assert found is not None, (
        f"no annotated frame seen on the display in {screenshots} screenshots ({lit} not all black{saved}; most"
        f" FPS-text pixels {best[0]}, most box pixels {best[1]}); analyzer said: {out[-1000:]} {err[-1000:]}")
    # the window holds a 640x480 frame: most of the screen outside it stays black
    assert (found.sum(axis=2) > 0).sum() >= 640 * 480 * 0.9
