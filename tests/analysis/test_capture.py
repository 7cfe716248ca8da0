import threading

from emotion_analyzer.analysis.capture import Reader, ThreadedCapture


def test_latest_only_capture_hands_out_the_newest_frame(stopping_camera):
    camera = stopping_camera(50)
    with ThreadedCapture(camera, latest_only=True, live_clock=True) as capture:
        first = capture.next_frame()
        assert capture.finished.wait(timeout=10)
        last = capture.next_frame()
        assert capture.next_frame(timeout=0.2) is None
    assert first.index < last.index == 49
    assert capture.dropped == 50 - 2
    assert camera.released


class StalledStream(Reader):
    """A stream whose read() blocks, as a network stream that stops sending does, until `unblock` is set."""

    def __init__(self):
        super().__init__()
        self.reading = threading.Event()
        self.unblock = threading.Event()
        self.released_while_reading = None
        self.released = threading.Event()

    def read(self):
        self.reading.set()
        self.unblock.wait()
        self.reading.clear()
        return None

    def release(self):
        self.released_while_reading = self.reading.is_set()
        self.released.set()


def test_a_source_is_never_released_under_a_reader_stalled_in_read():
    stream = StalledStream()
    capture = ThreadedCapture(stream, latest_only=True, live_clock=True)
    with capture:
        assert stream.reading.wait(timeout=5)
        capture.close(timeout=0.2)  # gives up waiting for the stalled reader...
        assert not stream.released.is_set()  # ...without pulling the source from under it
        stream.unblock.set()
        assert stream.released.wait(timeout=5)  # the reader releases it once read() returns
    assert stream.released_while_reading is False
