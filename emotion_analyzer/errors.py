"""The one exception type the scripts turn into a one-line message and a non-zero exit code."""


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong option.

    The message names what was wrong and what to do next; no traceback is shown for it.
    """
