"""The stop signals, in one place: Ctrl-C (SIGINT), SIGTERM (kill, timeout, docker stop) and SIGHUP
(a closed terminal), and when each one stops a run.

Python runs a signal's handler in the main thread, whichever thread the kernel handed the signal to,
so the handler here decides by what the main thread is doing:

- by default a stop raises Stopped (a KeyboardInterrupt) at once, so every script's cleanup runs;
- inside `deferred()`, where files that belong together are written, it is recorded and raised when
  the outermost such block ends, however many more arrive meanwhile;
- inside `at_safe_points()`, around TensorFlow work (an exception raised while TensorFlow traces a
  function comes out of it as an unrelated error), it is recorded and raised by `raise_if_stopped()`
  at the next safe point, or when the block ends; a second one stops at once, outside `deferred()`.

Blocking the signals with pthread_sigmask instead would not hold: it masks the calling thread only,
and the kernel may deliver the signal to a capture or TensorFlow thread, after which Python runs the
handler in the main thread all the same.
"""

import contextlib
import os
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal, raised as Ctrl-C is so that every cleanup runs; its name is the message."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(interrupt):
    """128 + the signal's number, as a shell reports a process ended by it (SIGINT for a plain Ctrl-C)."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


class _MainThread:
    """What the main thread is inside of; only the main thread changes it, and the handler reads it."""
    deferring = 0       # depth of deferred() blocks
    safe_points = 0     # depth of at_safe_points() blocks
    pending = []        # stop signals recorded and not yet raised


def _handle(signum, _frame):
    if _MainThread.deferring:
        _MainThread.pending.append(signum)
    elif _MainThread.safe_points and not _MainThread.pending:
        _MainThread.pending.append(signum)
        # os.write, not print: a print here could interrupt a print of the main thread and fail as reentrant.
        os.write(sys.stderr.fileno(), f"\n{signal.Signals(signum).name}: stopping at the next safe point;"
                                      " send it again to stop at once\n".encode())
    else:  # no block holds it back, or asked twice at a safe point: the user wants out now
        _MainThread.pending.clear()
        raise Stopped(signum)


def raise_if_stopped():
    """Raise, as Stopped, a stop signal recorded while it was held back; nothing when there is none."""
    if _MainThread.pending and not _MainThread.deferring:
        signum = _MainThread.pending[0]
        _MainThread.pending.clear()
        raise Stopped(signum)


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handled():
    """A script's whole run: stop signals handled here, the handlers before it restored after it."""
    if not _in_main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handle) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _MainThread.pending.clear()


@contextlib.contextmanager
def _holding(counter):
    """Count the main thread into a block of kind `counter`, with the handler installed for the block
    when no script installed it (library use); raise what was recorded when the last such block ends."""
    if not _in_main_thread():  # the handler runs in the main thread: this thread is never interrupted
        yield
        return
    with contextlib.ExitStack() as stack:
        if signal.getsignal(signal.SIGINT) is not _handle:
            stack.enter_context(handled())
        setattr(_MainThread, counter, getattr(_MainThread, counter) + 1)
        try:
            yield
        finally:
            setattr(_MainThread, counter, getattr(_MainThread, counter) - 1)
        if not (_MainThread.deferring or _MainThread.safe_points):
            raise_if_stopped()


def deferred():
    """Hold stop signals back until the block ends, so that files which belong together are all written."""
    return _holding("deferring")


def at_safe_points():
    """Inside the block a stop is recorded; raise_if_stopped() raises it at a safe point (between
    training batches, evaluation steps), or the block's end does."""
    return _holding("safe_points")
