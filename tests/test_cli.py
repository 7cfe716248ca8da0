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
