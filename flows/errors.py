"""Which exceptions are a user's problem to fix (printed as one line), not a bug; and which
failures are worth a retry (an input or setting that is wrong stays wrong: never retried)."""

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


def retry_transient(task, task_run, state) -> bool:
    """For ``retry_condition_fn``: retry what may pass next time (a busy disk, a lost
    connection), never a user error such as ``--device cuda`` without a GPU."""
    try:
        state.result(raise_on_failure=True)
    except USER_ERRORS:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return False


def finished(summary: dict, logger, what: str = "handled"):
    """A run's end, as Prefect shows it: Completed, or "Completed with errors" (still completed,
    so its summary is its result) when some files could not be handled."""
    from prefect.states import Completed

    logger.info(
        f"report: {summary['report']}; " + ", ".join(f"{a} {n}" for a, n in summary["counts"].items())
    )
    if summary["counts"]["error"]:
        return Completed(
            name="Completed with errors",
            data=summary,
            message=f"completed with errors: {summary['counts']['error']} file(s) could not be {what}",
        )
    return summary
