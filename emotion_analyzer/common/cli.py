"""What every script does around its work: one-line errors, exit codes, stop signals (stops.py),
progress bars, and argument types that refuse impossible numbers at parse time."""

import argparse
import difflib
import re
import sys
from collections import defaultdict

from tqdm import tqdm

from emotion_analyzer import config
from emotion_analyzer.common import stops
from emotion_analyzer.common.fileio import printable
from emotion_analyzer.errors import UserError

EXIT_USER_ERROR = 2
# How many of the files skipped for one reason are named.
MAX_LISTED = 5


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line with a hint, not the whole usage block, and that
    has --version."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)
        self.add_argument("--version", action="version", version=f"%(prog)s {config.VERSION}")

    def error(self, message):
        hint = f"{self.prog} --help lists the options"
        unknown = [word for word in message.split() if word.startswith("--")]
        close = difflib.get_close_matches(unknown[0], list(self._option_string_actions), n=1) if unknown else []
        if close and message.startswith("unrecognized arguments"):
            hint = f"did you mean {close[0]}? {hint}"
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} ({hint})\n")


def run_cli(work, args):
    """Run `work(args)`; turn a UserError or a stop signal into one line on stderr and an exit code."""
    try:
        with stops.handled():
            return work(args) or 0
    except UserError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        print("interrupted: nothing half-written was left behind; run it again to finish.", file=sys.stderr)
        return stops.exit_code(exc)


# Where stderr is a log file (nohup, a scheduler), a progress bar is a line this often, not a redraw.
LOG_PROGRESS_SECONDS = 30


class LogLines:
    """A stream for tqdm where stderr is not a terminal: each refresh a line of its own, since a log
    keeps every carriage-return redraw on one endless line."""

    def __init__(self, stream):
        self.stream = stream
        self.last = None

    def write(self, text):
        line = text.replace("\r", "").rstrip()
        # the closing redraw repeats the last count with a newer rate, and so a bar a character longer
        count = re.sub(r"\|.*\|", "|", line).split("[")[0]
        if line and count != self.last:
            self.stream.write(line + "\n")
            self.last = count

    def flush(self):
        self.stream.flush()


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr (pass total= and call update() when there is no iterable); in a
    log, a line every LOG_PROGRESS_SECONDS and one at the end."""
    if sys.stderr.isatty():
        kwargs.setdefault("dynamic_ncols", True)
        kwargs.setdefault("mininterval", 0.5)
    else:
        kwargs.setdefault("file", LogLines(sys.stderr))
        kwargs.setdefault("mininterval", LOG_PROGRESS_SECONDS)
        kwargs.setdefault("ncols", 100)
    return tqdm(iterable, **kwargs)


def silent(*_):
    """A log or warn function that says nothing (worker processes, the library)."""


def warn(message):
    print(f"warning: {printable(message)}", file=sys.stderr)


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


def format_skipped(skipped):
    """What was skipped, a line per reason: how many, and the first few files (`where`, reason pairs)."""
    by_reason = defaultdict(list)
    for where, reason in skipped:
        by_reason[reason].append(str(where))
    lines = []
    for reason, places in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(places[:MAX_LISTED]) + (", ..." if len(places) > MAX_LISTED else "")
        lines.append(f"skipped {len(places):,} ({reason}): {shown}")
    return lines
