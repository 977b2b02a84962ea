"""The base of every error a user can act on: the CLI prints its message as one line."""


class OrientError(Exception):
    """An expected problem (bad input, missing file); its message says what to do."""


class ModelLoadError(OrientError):
    """A model that cannot be loaded; the message says which file and why."""
