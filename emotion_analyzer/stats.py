"""What a run of the analyzer measured: frames, faces, time per stage, latency and memory."""

import resource
import sys
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# "detect" is the cascade's own time (mostly overlapped); "wait for detection" is what it adds to a frame.
STAGES = ("capture", "follow", "detect", "classify", "draw", "wait for detection")

# Percentiles come from the most recent frames only, so a day-long webcam run keeps flat memory.
LATENCY_WINDOW = 100_000


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

    def add_stage(self, stage, seconds):
        total = self.stage_totals[stage]
        total[0] += seconds
        total[1] += 1

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
