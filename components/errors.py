"""The one exception type for a user's mistake, and the rule that no credential is ever printed.

Raise ``UserError("what is wrong; how to mend it")`` anywhere in a stage. The ``mol`` CLI prints it
as one line and exits with status 2, with no traceback; library callers (Kubeflow components, tests)
get an ordinary exception they can catch.

``redact(text)`` hides the password (the whole userinfo) of every URI in a text: use it wherever a
URI the user gave (a tracking store, an artifact location) is printed or logged. The CLI applies it
to every error line as a last guard.
"""
from __future__ import annotations

import re

# scheme://user:password@host or scheme://token@host: everything between // and the last @ of the authority
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s'\"]+)@")


class UserError(Exception):
    """Bad input or configuration that the user can fix. The message is one sentence."""


def redact(text: object) -> str:
    """`text` with the userinfo of every URI in it replaced by `***`
    (`http://me:secret@host/x` -> `http://***@host/x`); text without credentials is unchanged."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}***@", str(text))
