"""What every script does around its work: one-line errors, exit codes, progress bars."""

import sys

from tqdm import tqdm

from emotion_analyzer.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run_cli(work, args):
    """Run `work(args)`; turn a UserError or Ctrl-C into one line on stderr and an exit code."""
    try:
        return work(args) or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left behind; run it again to finish.", file=sys.stderr)
        return EXIT_INTERRUPTED


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr (pass total= and call update() when there is no iterable)."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


def warn(message):
    print(f"warning: {message}", file=sys.stderr)
