"""The live window: shows annotated frames and handles keys (q/Esc quit, p pause, s snapshot)."""

import os
import sys
import time
from pathlib import Path

import cv2

from emotion_analyzer.analysis.draw import draw_status
from emotion_analyzer.errors import UserError

WINDOW_TITLE = "Emotion Analyzer"
KEY_QUIT = {ord("q"), ord("Q"), 27}


def check_display_available(camera=False):
    """A UserError when there is no display for the window; for a webcam source (a machine without a
    screen rarely has a camera), the advice is a photo or a video instead."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        if camera:
            raise UserError("no display to open a window on, and the source is a webcam: read a photo or a video"
                            " instead, `--source FILE --no-display --csv out.csv`, or run under a desktop session")
        raise UserError("no display to open a window on: pass --no-display (with --output and/or --csv),"
                        " or run under a desktop session or xvfb-run")


class Window:
    """The live window; keys: q/Esc quit, p pause, s save a snapshot."""

    def __init__(self, snapshot_dir, log):
        self.snapshot_dir = Path(snapshot_dir)
        self.log = log
        self.paused = False
        cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no Qt toolbar

    def closed_by_user(self):
        try:
            return cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def save_snapshot(self, canvas):
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.snapshot_dir / time.strftime("snapshot-%Y%m%d-%H%M%S.png")
        cv2.imwrite(str(path), canvas)
        self.log(f"snapshot saved: {path}")

    def show(self, canvas, fps=0.0, faces=0):
        """Show a frame with the status line (`fps`, `faces`, the keys) drawn on a copy, so the video
        written carries only the faces; handle keys; False when the user asked to quit."""
        shown = canvas.copy()
        draw_status(shown, fps, faces)
        cv2.imshow(WINDOW_TITLE, shown)
        while True:
            key = cv2.waitKey(1 if not self.paused else 50) & 0xFF
            if key in KEY_QUIT or self.closed_by_user():
                return False
            if key in (ord("p"), ord("P")):
                self.paused = not self.paused
                shown = canvas.copy()
                draw_status(shown, fps, faces, paused=self.paused)
                cv2.imshow(WINDOW_TITLE, shown)
            elif key in (ord("s"), ord("S")):
                self.save_snapshot(shown)
            if not self.paused:
                return True

    def hold(self):
        """Keep a still image on screen until a key is pressed or the window is closed."""
        while not self.closed_by_user() and cv2.waitKey(100) == -1:
            pass

    def close(self):
        cv2.destroyAllWindows()
        cv2.waitKey(1)
