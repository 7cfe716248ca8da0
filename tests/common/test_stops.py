"""The stop signals: raised at once by default, held back by deferred(), raised at safe points by
at_safe_points(), whatever thread the kernel hands them to; handlers restored after a script."""

import os
import signal
import threading
import time

import pytest

from emotion_analyzer.common.stops import at_safe_points, deferred, exit_code, handled, raise_if_stopped, STOP_SIGNALS


def send_to_self(signum):
    os.kill(os.getpid(), signum)
    for _ in range(1000):  # Python runs the handler at the next bytecode
        pass


@pytest.fixture
def idle_thread():
    """A second thread, alive and idle, as the analyzer's capture thread or TensorFlow's are: the
    kernel may deliver a process signal to it rather than to the main thread."""
    done = threading.Event()
    thread = threading.Thread(target=done.wait, daemon=True)
    thread.start()
    yield thread
    done.set()
    thread.join()


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_stop_interrupts_a_script_at_once_with_its_own_exit_code(signum):
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with pytest.raises(KeyboardInterrupt) as stopped, handled():
        send_to_self(signum)
        pytest.fail("the stop must interrupt")
    assert exit_code(stopped.value) == 128 + signum
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before  # the script's handlers are gone


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_deferred_block_runs_to_its_end_with_a_second_thread_alive_and_signals_arriving(signum, idle_thread):
    steps = []
    with pytest.raises(KeyboardInterrupt) as stopped, handled():
        with deferred():
            for step in range(20):
                os.kill(os.getpid(), signum)  # from outside, to the process: any thread may take it
                time.sleep(0.005)
                steps.append(step)
        pytest.fail("the stop must be raised when the block ends")
    assert steps == list(range(20))
    assert exit_code(stopped.value) == 128 + signum


def test_nested_deferred_blocks_raise_when_the_outermost_ends(idle_thread):
    steps = []
    with pytest.raises(KeyboardInterrupt), deferred():
        with deferred():
            send_to_self(signal.SIGTERM)
            steps.append("inner")
        raise_if_stopped()  # not a safe point while files are being written
        steps.append("outer")
    assert steps == ["inner", "outer"]
    raise_if_stopped()  # nothing left pending


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_inside_tensorflow_work_a_stop_waits_for_a_safe_point(signum, capfd, idle_thread):
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    finished = []
    with pytest.raises(KeyboardInterrupt) as stopped, at_safe_points():
        send_to_self(signum)
        finished.append("the work under way")  # not cut off: the signal was only recorded
        raise_if_stopped()
        finished.append("past the safe point")
    assert finished == ["the work under way"]
    assert exit_code(stopped.value) == 128 + signum
    assert "stopping at the next safe point" in capfd.readouterr().err
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_stop_without_a_safe_point_is_raised_as_the_block_ends_and_a_second_stops_at_once():
    with pytest.raises(KeyboardInterrupt) as stopped, at_safe_points():
        send_to_self(signal.SIGTERM)
    assert exit_code(stopped.value) == 128 + signal.SIGTERM
    with pytest.raises(KeyboardInterrupt), at_safe_points():
        send_to_self(signal.SIGINT)
        send_to_self(signal.SIGINT)
        pytest.fail("a second Ctrl-C must stop at once")
    raise_if_stopped()  # nothing left pending for the next block


def test_a_second_stop_at_a_safe_point_still_waits_while_files_are_written():
    written = []
    with pytest.raises(KeyboardInterrupt), at_safe_points():
        send_to_self(signal.SIGINT)
        with deferred():  # the checkpoint of an epoch
            send_to_self(signal.SIGINT)
            written.append("checkpoint")
        raise_if_stopped()
    assert written == ["checkpoint"]


def test_other_threads_are_never_interrupted_by_these_blocks():
    results = []

    def work():
        with deferred(), at_safe_points():
            raise_if_stopped()
            results.append("done")
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == ["done"]
