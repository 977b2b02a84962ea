"""Which exceptions are a user's problem to fix (printed as one line), not a bug."""

from orient_model.errors import OrientError

USER_ERRORS: tuple[type[Exception], ...] = (OrientError, NotADirectoryError)
