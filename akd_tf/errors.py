"""The errors akd-tf raises for its users: input, stored data, devices and waits, apart from bugs.

The library raises these where the user can act on the message (it names the bad value and what
was expected). The command line prints them as one line; any other exception is a bug and keeps
its traceback. Each also derives from the built-in type callers caught before this hierarchy
existed (``ValueError``, ``ConnectionError``, ``TimeoutError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class AkdTfError(Exception):
    """An error of the user's input or environment, not of akd-tf: its message says what to change."""


class InvalidInput(AkdTfError, ValueError):
    """A value is not what was expected: an architecture string, an option, a file's content."""


class MissingData(AkdTfError, ValueError):
    """Something the request needs is not stored: a device, a table entry, a run, a measurement."""


class MissingSplit(MissingData):
    """A dataset has no split of the name asked for (say, no test split); other problems of its data are not this."""


class DeviceError(AkdTfError):
    """A device cannot measure now: unreachable, key not accepted, too hot, or its run failed."""


class WaitTimedOut(AkdTfError, TimeoutError):
    """A bounded wait (for farm workers, for a phone's owner) ran out; the work it waited for is kept."""


# OS errors that name a path the user gave (a missing teacher file, an unwritable --out).
USER_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_user_error(exc: BaseException) -> bool:
    """True if ``exc`` is the user's to fix (printed as one line), False if it is a bug (keeps its traceback)."""
    return isinstance(exc, (AkdTfError, *USER_OS_ERRORS))
