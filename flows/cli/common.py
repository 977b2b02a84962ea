"""What every command shares: the group, output and the one adapter that turns expected
problems into one `error:` line (status 1), and a run that completed with errors into status 3."""

from __future__ import annotations

import functools
import json
import sys
from importlib import metadata
from pathlib import Path

import click

from flows.options import overrides

EXIT_USER_ERROR = 1
EXIT_COMPLETED_WITH_ERRORS = 3


def _version() -> str:
    try:
        return metadata.version("orient")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def say(text: str) -> None:
    """A line for the person at the terminal (stderr: stdout is kept for --json)."""
    click.echo(text, err=True)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(EXIT_USER_ERROR)


def user_errors(fn):
    """Expected problems end with one clear line and exit status 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pydantic import ValidationError

        from flows.errors import USER_ERRORS

        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"file not found: {exc.filename or exc}")
        except OSError as exc:  # a full disk, a read-only folder, ...: what and where, in one line
            where = f" ({exc.filename})" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            fail(f"invalid setting {where}: {first['msg']} (got {first.get('input')!r})")
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume (finished work is kept)")

    return wrapper


def existing_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        fail(f"{what} not found: {path}")
    return path


def load(config: Path | None, section: str, values: dict):
    from orient_model.config import load_config

    return getattr(load_config(config, overrides(section, values)), section)


def output_options(fn):
    fn = click.option(
        "--json", "as_json", is_flag=True, help="print the summary as JSON on stdout, nothing else"
    )(fn)
    fn = click.option("--quiet", "-q", is_flag=True, help="no progress, only errors")(fn)
    return fn


def set_output(quiet: bool, as_json: bool) -> None:
    from flows.progress import display

    display.mode = "off" if (quiet or as_json) else ("bar" if sys.stderr.isatty() else "lines")


def run_flow(server, flow_fn, **params):
    """Run a flow against the command's Prefect API; a failed run ends the command with its message."""
    if server is not None:
        server.wait_until_ready()
    from flows.progress import display

    try:
        state = flow_fn(**params, return_state=True)
    finally:
        display.stop()
    if not state.is_completed():
        fail(state.message or f"{flow_fn.name} ended {state.name}")
    return state.result()


config_option = click.option(
    "--config", "-c", type=click.Path(path_type=Path), help="YAML config file (see `orient config`)"
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(_version(), prog_name="orient")
def main() -> None:
    """orient: find and fix the orientation of scanned photographs, safely, in batch.

    Start with `orient demo`, then `orient review orient-demo/archive`. Each command's options:
    `orient COMMAND --help`; every setting with its default: `orient config`.

    \b
    Documentation: README.md, and the pages in docs/ (a MkDocs site):
      .venv/bin/mkdocs serve    read it at http://127.0.0.1:8000
      docs/safety.md            what is never lost, and how
      docs/model.md             how sure it is: the certified bound, the figures
      docs/cli.md               every command; docs/configuration.md: every setting
    """


models_dir_option = click.option(
    "--models-dir",
    type=click.Path(path_type=Path),
    help="the model registry (default: ORIENT_MODELS_DIR, else in your data directory)",
)

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="state folder of report-only runs, if not the default one",
)


def finish_summary(summary: dict, quiet: bool, as_json: bool) -> None:
    """Print a run's summary (or its JSON) and leave with the status that says how it went."""
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    elif not quiet:
        counts = ", ".join(f"{n} {a}" for a, n in summary["counts"].items() if n)
        carried = (
            f" ({summary['carried_over']} carried over unchanged)" if summary.get("carried_over") else ""
        )
        click.echo(
            f"{summary['files']} files{carried}: {counts or 'nothing'}; {summary['applied']} changes written"
        )
        if summary.get("decisions"):
            click.echo(f"{summary.get('automatic', 0)} automatic decisions; {summary['decisions']}")
        click.echo(f"report: {summary['report']}")
        click.echo(f"run id: {summary['run_id']}")
        if summary.get("flagged_dir"):
            click.echo(
                f"flagged photos (the four ways each could be turned, with evidence): {summary['flagged_dir']}"
            )
    errors = summary["counts"].get("error", 0)
    if errors:
        if not as_json:
            say(f"completed with errors: {errors} file(s) could not be handled; see the report")
        raise SystemExit(EXIT_COMPLETED_WITH_ERRORS)
