import argparse

import pytest

from emotion_analyzer.common.cli import positive_int, probability


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
