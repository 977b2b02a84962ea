"""Progress a person can follow: a bar with rate and ETA on a terminal, plain lines elsewhere,
and a progress artifact (with log lines) in the Prefect UI.

The command line sets :data:`display` for the process; flows and tasks only call
:class:`RunProgress`, which feeds both the display and the UI.
"""

from __future__ import annotations

import sys
import threading
import time

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact


class Display:
    """Where progress shows on the terminal: nowhere (the default, and ``--quiet``/``--json``),
    a rich bar (stderr is a terminal), or a plain line every few seconds (a log file, cron)."""

    def __init__(self, mode: str = "off", every_s: float = 5.0) -> None:
        self.mode, self.every_s = mode, every_s
        self._lock = threading.Lock()
        self._bars: dict[str, tuple] = {}
        self._last: dict[str, tuple[float, int]] = {}  # when and at what count a line showed
        self._rich = None

    def start(self, key: str, what: str, total: int) -> None:
        with self._lock:
            if self.mode == "bar":
                if self._rich is None:
                    from rich.progress import (
                        BarColumn,
                        MofNCompleteColumn,
                        Progress,
                        TextColumn,
                        TimeRemainingColumn,
                    )

                    self._rich = Progress(
                        TextColumn("{task.description}"),
                        BarColumn(),
                        MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"),
                        TimeRemainingColumn(),
                        transient=False,
                        refresh_per_second=4,
                    )
                    self._rich.start()
                self._bars[key] = (
                    self._rich.add_task(what, total=max(total, 1), rate=""),
                    time.monotonic(),
                    total,
                )
            elif self.mode == "lines":
                self._bars[key] = (None, time.monotonic(), total)
                self._last.pop(key, None)
                self.line(f"{what}: 0/{total}")

    def update(self, key: str, what: str, done: int) -> None:
        with self._lock:
            if key not in self._bars:
                return
            task, started, total = self._bars[key]
            rate = done / max(time.monotonic() - started, 1e-9)
            if self.mode == "bar":
                self._rich.update(task, completed=done, rate=f"{rate:.1f}/s")
            elif self.mode == "lines":
                # A line when the count moved (milestones show as notes meanwhile): a log file
                # of a 40-minute caching pass holds its notes, not "0/2" every five seconds.
                now = time.monotonic()
                last_at, last_done = self._last.get(key, (0.0, 0))
                if done > last_done and (done >= total or now - last_at >= self.every_s):
                    self._last[key] = (now, done)
                    eta = (total - done) / rate
                    self.line(f"{what}: {done}/{total} ({rate:.1f}/s, about {eta:.0f} s left)")

    def note(self, key: str, text: str) -> None:
        """A milestone of long work (an epoch, a caching pass): the bar's caption, or a line."""
        with self._lock:
            if key not in self._bars:
                return
            if self.mode == "bar":
                self._rich.update(self._bars[key][0], description=text)
        if self.mode == "lines":
            self.line(text)

    def line(self, text: str) -> None:
        if self.mode == "bar" and self._rich is not None:
            self._rich.console.print(text, highlight=False)
        elif self.mode != "off":
            # Not print(): flows log their prints, and the console shows only warnings.
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def stop(self) -> None:
        with self._lock:
            if self._rich is not None:
                self._rich.stop()
                self._rich = None
            self._bars.clear()
            self._last.clear()


display = Display()


class RunProgress:
    """Counts work done; keeps the UI artifact and the terminal display current, and logs at
    most every ``every_s`` seconds."""

    def __init__(self, key: str, total: int, what: str, every_s: float = 5.0):
        self.key, self.total, self.done, self.what, self.every_s = key, max(total, 1), 0, what, every_s
        self.started = self.last = time.monotonic()
        self.artifact_id = create_progress_artifact(0.0, key=key, description=f"{what}: progress")
        self.logger = get_run_logger()
        display.start(key, what, total)

    def advance(self, n: int = 1, message: str | None = None) -> None:
        self.done += n
        self.report(self.done / self.total, message)

    def report(self, fraction: float, message: str | None = None, milestone: bool = False) -> None:
        now = time.monotonic()
        final = fraction >= 1.0
        display.update(self.key, self.what, round(min(fraction, 1.0) * self.total))
        if message and (milestone or final or now - self.last >= self.every_s):
            self.logger.info(message)
            display.note(self.key, message)
        if final or now - self.last >= self.every_s:
            self.last = now
            update_progress_artifact(self.artifact_id, min(fraction, 1.0) * 100)
            if not message:
                rate = self.done / max(now - self.started, 1e-9)
                self.logger.info(f"{self.what}: {self.done}/{self.total} ({rate:.1f}/s)")
