"""`python -m flows.cli`: the same as the `orient` command."""

from flows.cli import run

run()
