"""Which exceptions are a user's problem to fix (printed as one line), not a bug."""

from __future__ import annotations

import functools

from prefect.states import Failed

from orient_model.errors import OrientError

USER_ERRORS: tuple[type[Exception], ...] = (OrientError, NotADirectoryError)


def fail_cleanly(fn):
    """Inside a flow: a user error ends the run Failed with its message, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            return Failed(message=str(exc))

    return wrapper
