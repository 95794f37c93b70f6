"""The one exception type for mistakes a user can fix (bad flag, unknown dataset, wrong workdir).

`train.py` and `sample.py` print its message as a single line and exit with status 1, so the message
must name the problem and the fix.
"""


class UserError(Exception):
    """A problem in what the user asked for, with its fix in the message."""
