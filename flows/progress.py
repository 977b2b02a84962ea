"""Progress a person can follow: log lines on the terminal and a progress artifact in the UI."""

from __future__ import annotations

import time

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact


class RunProgress:
    """Counts work done; logs at most every ``every_s`` seconds and keeps the UI artifact current."""

    def __init__(self, key: str, total: int, what: str, every_s: float = 5.0):
        self.total, self.done, self.what, self.every_s = max(total, 1), 0, what, every_s
        self.started = self.last = time.monotonic()
        self.artifact_id = create_progress_artifact(0.0, key=key, description=f"{what}: progress")
        self.logger = get_run_logger()

    def advance(self, n: int = 1, message: str | None = None) -> None:
        self.done += n
        self.report(self.done / self.total, message)

    def report(self, fraction: float, message: str | None = None, milestone: bool = False) -> None:
        now = time.monotonic()
        final = fraction >= 1.0
        if message and (milestone or final or now - self.last >= self.every_s):
            self.logger.info(message)
        if final or now - self.last >= self.every_s:
            self.last = now
            update_progress_artifact(self.artifact_id, min(fraction, 1.0) * 100)
            if not message:
                rate = self.done / max(now - self.started, 1e-9)
                self.logger.info(f"{self.what}: {self.done}/{self.total} ({rate:.1f}/s)")
