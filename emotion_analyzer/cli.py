"""What every script does around its work: one-line errors, exit codes, stop signals, progress bars,
and argument types that refuse impossible numbers at parse time."""

import argparse
import contextlib
import os
import signal
import sys
import threading

from tqdm import tqdm

from emotion_analyzer.errors import UserError
from emotion_analyzer.fileio import STOP_SIGNALS

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (kill, timeout, docker stop, a closed terminal), handled as Ctrl-C is."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_stopped(signum, _frame):
    raise Stopped(signum)


def exit_code(interrupt):
    """128 + the signal's number, as a shell reports a process ended by it."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def handle_stop_signals():
    """Make SIGTERM and SIGHUP interrupt the main thread as Ctrl-C does, so every script's cleanup runs."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_stopped)


_pending_stops = []  # stop signals received inside stop_signals_at_safe_points, not yet raised


def _record_stop(signum, _frame):
    if _pending_stops:  # asked twice: the user wants out now
        raise Stopped(signum)
    _pending_stops.append(signum)
    # os.write, not print: a print here could interrupt a print of the main thread and fail as reentrant.
    os.write(sys.stderr.fileno(), f"\n{signal.Signals(signum).name}: stopping at the next safe point;"
                                  " send it again to stop at once\n".encode())


def raise_if_stopped():
    """Raise, as Stopped, a stop signal that arrived inside stop_signals_at_safe_points (else nothing)."""
    if _pending_stops:
        signum = _pending_stops[0]
        _pending_stops.clear()
        raise Stopped(signum)


@contextlib.contextmanager
def stop_signals_at_safe_points():
    """Inside this block a stop signal is only recorded; raise_if_stopped() (and the block's end) raise it.

    For TensorFlow work: a KeyboardInterrupt raised while TensorFlow traces a function or converts a
    model is caught inside it and comes out as an unrelated error (seen: "TypeError: Failed to convert
    elements of (None,) to Tensor" from model.fit), so the run would end in a traceback instead of
    stopping cleanly. Code in the block calls raise_if_stopped() where stopping is safe (between
    batches). Only the main thread receives signals, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _record_stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        pending = _pending_stops[:1]
        _pending_stops.clear()
    if pending:  # the block ended before a safe point came
        raise Stopped(pending[0])


def run_cli(work, args):
    """Run `work(args)`; turn a UserError or a stop signal into one line on stderr and an exit code."""
    handle_stop_signals()
    try:
        return work(args) or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        print("interrupted: nothing half-written was left behind; run it again to finish.", file=sys.stderr)
        return exit_code(exc)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr (pass total= and call update() when there is no iterable)."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


def warn(message):
    print(f"warning: {message}", file=sys.stderr)


def number_type(convert, check, expected):
    """An argparse type: `convert` the text, then refuse values for which `check` is false."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected {expected}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text}: expected {expected}")
        return value
    return parse


positive_int = number_type(int, lambda v: v >= 1, "a whole number of at least 1")
non_negative_int = number_type(int, lambda v: v >= 0, "0 or a positive whole number")
positive_float = number_type(float, lambda v: v > 0, "a positive number")
non_negative_float = number_type(float, lambda v: v >= 0, "0 or a positive number")
probability = number_type(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")
