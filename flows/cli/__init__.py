"""The `orient` command line: thin wrappers that check input, then run a library call or a flow.

Every setting of a job is also an option (derived from the config's fields: see
``flows/options.py``). Expected problems end with one ``error:`` line and status 1; a run that
finished but could not handle some files ends with status 3 ("completed with errors"), so an
automation can tell the two apart.
"""

from __future__ import annotations

import os

from flows.cli import reviewing, running, serving, training  # noqa: F401 - each registers its commands
from flows.cli.common import EXIT_COMPLETED_WITH_ERRORS, EXIT_USER_ERROR, fail, main
from flows.cli.training import retraining_config
from orient_model.errors import OrientError

__all__ = ["EXIT_COMPLETED_WITH_ERRORS", "EXIT_USER_ERROR", "main", "retraining_config", "run"]


def run() -> None:
    """The console script: quiet Prefect on the terminal (the UI keeps every log line)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    try:
        main(standalone_mode=True)
    except OrientError as exc:  # pragma: no cover - belt and braces
        fail(str(exc))
