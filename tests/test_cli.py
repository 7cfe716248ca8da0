import argparse
import os
import signal

import pytest

from emotion_analyzer.cli import (exit_code, handle_stop_signals, positive_int, probability, raise_if_stopped,
                                  stop_signals_at_safe_points)


@pytest.mark.parametrize("parse, text, accepted", [
    (positive_int, "3", 3), (positive_int, "0", None), (positive_int, "-5", None), (positive_int, "x", None),
    (probability, "0.25", 0.25), (probability, "1.5", None),
])
def test_number_types_refuse_impossible_values_with_what_was_expected(parse, text, accepted):
    if accepted is None:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parse(text)
    else:
        assert parse(text) == accepted


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_interrupt_as_ctrl_c_with_their_own_exit_code(signum):
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    handle_stop_signals()
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            os.kill(os.getpid(), signum)  # the handler raises at the next bytecode
            for _ in range(1000):
                pass
        assert exit_code(stopped.value) == 128 + signum
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def send_to_self(signum):
    os.kill(os.getpid(), signum)
    for _ in range(1000):  # Python runs the handler at the next bytecode
        pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_inside_tensorflow_work_a_stop_waits_for_a_safe_point(signum, capfd):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    finished = []
    with pytest.raises(KeyboardInterrupt) as stopped:
        with stop_signals_at_safe_points():
            send_to_self(signum)
            finished.append("the work under way")  # not cut off: the signal was only recorded
            raise_if_stopped()
            finished.append("past the safe point")
    assert finished == ["the work under way"]
    assert exit_code(stopped.value) == 128 + signum
    assert "stopping at the next safe point" in capfd.readouterr().err
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_stop_without_a_safe_point_is_raised_as_the_block_ends_and_a_second_stops_at_once():
    with pytest.raises(KeyboardInterrupt) as stopped:
        with stop_signals_at_safe_points():
            send_to_self(signal.SIGTERM)
    assert exit_code(stopped.value) == 128 + signal.SIGTERM
    with pytest.raises(KeyboardInterrupt) as stopped:
        with stop_signals_at_safe_points():
            send_to_self(signal.SIGINT)
            send_to_self(signal.SIGINT)
            pytest.fail("a second Ctrl-C must stop at once")
    raise_if_stopped()  # nothing left pending for the next block
