"""The one exception type for a user's mistake.

Raise ``UserError("what is wrong; how to mend it")`` anywhere in a stage. The ``mol`` CLI prints it
as one line and exits with status 2, with no traceback; library callers (Kubeflow components, tests)
get an ordinary exception they can catch.
"""


class UserError(Exception):
    """Bad input or configuration that the user can fix. The message is one sentence."""
