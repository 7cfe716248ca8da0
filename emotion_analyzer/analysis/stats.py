"""What a run of the analyzer measured: frames, faces, time per stage, latency and memory."""

import contextlib
import resource
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# "detect" is the cascade's own time (mostly overlapped); "wait for detection" is what it adds to a frame.
STAGES = ("capture", "follow", "detect", "classify", "draw", "wait for detection")

# Percentiles come from the most recent frames only, so a day-long webcam run keeps flat memory.
LATENCY_WINDOW = 100_000

# The frame rate shown live is an exponential average of each frame's rate with this weight on the
# newest: about the last ten frames, steady enough to read and quick to show a slowdown.
FPS_WEIGHT = 0.1


@dataclass
class RunStats:
    frames: int = 0
    faces: int = 0
    stage_totals: dict = field(default_factory=lambda: {s: [0.0, 0] for s in STAGES})  # seconds, calls
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    wall_seconds: float = 0.0
    skipped: list = field(default_factory=list)
    dropped: int = 0
    ended_early: str | None = None
    interrupted: str | None = None  # the signal that stopped the run early (SIGINT, SIGTERM, SIGHUP)
    exit_code: int = 0
    peak_rss_mb: float = 0.0
    csv_rows: int = 0
    video_frames: int = 0
    fps_estimate: float = 0.0       # the live rate, shown in the window
    _last_frame_end: float | None = None

    def add_stage(self, stage, seconds):
        total = self.stage_totals[stage]
        total[0] += seconds
        total[1] += 1

    @contextlib.contextmanager
    def stage(self, name):
        """Time the block as one call of stage `name`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add_stage(name, time.perf_counter() - started)

    def frame_done(self, started, faces):
        """Count a frame begun at perf_counter() `started` with `faces` faces: its latency and the live rate."""
        now = time.perf_counter()
        self.frames += 1
        self.faces += faces
        self.latencies.append(now - started)
        if self._last_frame_end is not None:
            instant = 1 / max(now - self._last_frame_end, 1e-6)
            self.fps_estimate = (self.fps_estimate + FPS_WEIGHT * (instant - self.fps_estimate)
                                 if self.fps_estimate else instant)
        self._last_frame_end = now

    @property
    def fps(self):
        return self.frames / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def faces_per_frame(self):
        return self.faces / self.frames if self.frames else 0.0

    def timing_lines(self):
        lines = [f"{self.frames:,} frames in {self.wall_seconds:.1f} s: {self.fps:.1f} fps;"
                 f" {self.faces:,} faces ({self.faces_per_frame:.2f} per frame)"]
        # Per frame, not per call: detection runs only every few frames.
        stage_ms = ", ".join(f"{stage} {1000 * seconds / self.frames:.1f} ms"
                             for stage, (seconds, calls) in self.stage_totals.items() if calls and self.frames)
        if stage_ms:
            lines.append(f"mean per frame: {stage_ms}")
        if self.latencies:
            p50, p95 = np.percentile(self.latencies, [50, 95]) * 1000
            lines.append(f"frame latency p50 {p50:.1f} ms, p95 {p95:.1f} ms; peak RSS {self.peak_rss_mb:.0f} MB")
        return lines


def peak_rss_mb():
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
