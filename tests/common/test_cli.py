import argparse
import os
import signal

import pytest

from emotion_analyzer.common.cli import (format_skipped, MAX_LISTED, non_negative_float, non_negative_int,
                                         positive_float, positive_int, probability, run_cli)
from emotion_analyzer.errors import UserError


@pytest.mark.parametrize("parse, text, accepted", [
    (positive_int, "3", 3), (positive_int, "0", None), (positive_int, "-5", None), (positive_int, "2.5", None),
    (non_negative_int, "0", 0), (non_negative_int, "-1", None),
    (positive_float, "0.5", 0.5), (positive_float, "0", None),
    (non_negative_float, "0", 0.0), (non_negative_float, "-0.1", None),
    (probability, "0.25", 0.25), (probability, "1", 1.0), (probability, "1.5", None), (probability, "-0.5", None),
])
def test_number_types_refuse_impossible_values_with_what_was_expected(parse, text, accepted):
    if accepted is None:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^'?{text}'?.*expected"):
            parse(text)
    else:
        assert parse(text) == accepted and type(parse(text)) is type(accepted)


def test_text_given_for_a_number_is_named_as_not_a_number():
    with pytest.raises(argparse.ArgumentTypeError, match="'many' is not a number; expected a whole number"):
        positive_int("many")


def test_a_user_error_is_one_line_and_exit_code_2(capsys):
    def work(args):
        raise UserError(f"no images in {args[0]}")

    assert run_cli(work, ["photos/"]) == 2
    err = capsys.readouterr().err
    assert err == "error: no images in photos/\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_is_one_line_and_the_signals_exit_code(capsys, signum):
    def work(args):
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal did not stop the work")

    assert run_cli(work, []) == 128 + signum
    assert "interrupted: nothing half-written was left behind" in capsys.readouterr().err


def test_finished_work_exits_0_and_its_own_code_passes_through():
    assert run_cli(lambda args: None, []) == 0
    assert run_cli(lambda args: 3, []) == 3


def test_skipped_files_are_counted_per_reason_most_first_and_only_the_first_few_named():
    skipped = [(f"bad{i}.jpg", "cannot decode") for i in range(MAX_LISTED + 2)] + [("empty.png", "0 bytes")]
    lines = format_skipped(skipped)
    named = ", ".join(f"bad{i}.jpg" for i in range(MAX_LISTED))
    assert lines == [f"skipped {MAX_LISTED + 2:,} (cannot decode): {named}, ...", "skipped 1 (0 bytes): empty.png"]
    assert format_skipped([]) == []


COMMANDS = ["clean", "prep", "train", "analyze"]


def command_main(name):
    from importlib import import_module

    return import_module(f"emotion_analyzer.commands.{name}").main


@pytest.mark.parametrize("name, typo, meant", [("clean", "--sorce", "--source"), ("prep", "--dta", None),
                                               ("train", "--epocs", "--epochs"), ("analyze", "--no-dsplay", "--no-display")])
def test_a_mistyped_option_is_one_line_with_a_hint(capsys, name, typo, meant):
    with pytest.raises(SystemExit) as stop:
        command_main(name)([typo, "1"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "usage:" not in err
    assert f"unrecognized arguments: {typo}" in err and "--help lists the options" in err
    if meant:
        assert f"did you mean {meant}?" in err


@pytest.mark.parametrize("name, option, value, expected", [
    ("train", "--epochs", "0", "argument --epochs: 0: expected a whole number of at least 1"),
    ("analyze", "--max-frames", "-3", "argument --max-frames: -3: expected a whole number of at least 1"),
    ("analyze", "--detector", "dlib", "argument --detector: invalid choice: 'dlib'"),
])
def test_an_impossible_value_is_one_line_naming_the_option(capsys, name, option, value, expected):
    with pytest.raises(SystemExit) as stop:
        command_main(name)([option, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and expected in err


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_says_its_version(capsys, name):
    from emotion_analyzer import __version__

    with pytest.raises(SystemExit) as stop:
        command_main(name)(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip().endswith(f" {__version__}")


def test_the_installed_package_has_the_version_the_code_says():
    from importlib.metadata import version

    from emotion_analyzer import __version__

    assert version("emotion-analyzer") == __version__


def test_in_a_log_a_progress_bar_is_whole_lines_ending_once_at_its_total(capsys):
    from emotion_analyzer.common.cli import progress

    with progress(total=5, desc="reading", unit="img", mininterval=0) as bar:
        for _ in range(5):
            bar.update(1)
    err = capsys.readouterr().err  # not a terminal, as a log file is not
    lines = err.splitlines()
    assert "\r" not in err and lines[0].startswith("reading:   0%")
    assert [line for line in lines if "5/5" in line] == [lines[-1]] and lines[-1].startswith("reading: 100%")
