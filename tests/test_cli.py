import argparse
import os
import signal

import pytest

from emotion_analyzer.cli import exit_code, handle_stop_signals, positive_int, probability


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
