"""The front door and the documentation: the README stays short, every `orient ...` line it (or a
docs page) shows names a real command with options that command has, its links lead somewhere,
and the configuration reference says what `orient config` says. In-process, no subprocess: the
click command tree is parsed as the shell would hand it the line."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import click
import pytest

from flows.cli import main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MAX_README_LINES = 300

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
_INLINE = re.compile(r"`((?:\.venv/bin/)?orient [^`]+)`")
_SHELL_BREAKS = {"&&", "||", ";", "|", ">", ">>", "<", "2>", "&"}
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")  # `orient COMMAND --help`


def orient_lines(text: str, inline: bool = True) -> list[str]:
    """Every `orient` invocation in a Markdown text's code blocks (and inline code), one each."""
    found = []
    blocks = [block.replace("\\\n", " ") for block in _FENCE.findall(text)]
    lines = [line for block in blocks for line in block.splitlines()]
    for line in lines + (_INLINE.findall(text) if inline else []):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:  # not a shell line (JSON in a prefect command, ...)
            continue
        command: list[str] = []
        for token in [*tokens, "&&"]:
            if token in _SHELL_BREAKS:
                while command and re.match(r"^[A-Z_]+=", command[0]):  # VAR=value orient ...
                    command.pop(0)
                if command and Path(command[0]).name == "orient":
                    found.append(shlex.join(command))
                command = []
            else:
                command.append(token)
    return found


def check_invocation(line: str, parse: bool = True) -> None:
    """The line names an existing command and only options it has; a whole command line (not a
    command named in prose, `orient serve`) must also parse as click would parse it."""
    args = shlex.split(line)[1:]
    if not args or args[0].startswith("-"):
        main.make_context("orient", args, resilient_parsing=False)
        return
    name, rest = args[0], args[1:]
    if _PLACEHOLDER.match(name):
        return
    assert name in main.commands, f"{line!r}: no command {name!r} (commands: {sorted(main.commands)})"
    command = main.commands[name]
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    known |= {"-h", "--help"}
    for token in rest:
        if token.startswith("-") and token != "-":
            flag = token.split("=", 1)[0]
            assert flag in known, f"{line!r}: `orient {name}` has no option {flag}"
    if not parse:
        return
    try:
        command.make_context(f"orient {name}", list(rest), resilient_parsing=False)
    except click.exceptions.Exit:  # --help
        pass
    except click.UsageError as exc:
        pytest.fail(f"{line!r} does not parse: {exc.format_message()}")


def test_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; at most {MAX_README_LINES}: move detail to docs/"
    )


def test_the_parser_finds_what_the_readme_shows():
    found = orient_lines(README.read_text())
    assert ".venv/bin/orient demo" in found
    assert ".venv/bin/orient review orient-demo/archive" in found
    assert "orient config" in found  # `orient config > my.yaml`: the redirection is the shell's
    assert not any("prefect" in line for line in found)
    with pytest.raises(AssertionError, match="has no option --no-such-flag"):
        check_invocation("orient autorotate /scans --no-such-flag")
    with pytest.raises(AssertionError, match="no command 'rotate'"):
        check_invocation("orient rotate /scans")


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_orient_line_is_a_real_command(page):
    text = page.read_text()
    for line in orient_lines(text, inline=False):
        check_invocation(line)
    for line in orient_lines(text):
        check_invocation(line, parse=False)


def test_readme_links_lead_somewhere():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the docs"
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
    assert {"docs/safety.md", "docs/cli.md", "docs/configuration.md"} <= set(local)


def test_every_docs_page_is_in_the_site():
    nav = (REPO / "mkdocs.yml").read_text()
    for page in PAGES:
        assert f": {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"


def _config_reference():
    spec = importlib.util.spec_from_file_location("config_reference", DOCS / "hooks" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_says_what_orient_config_says():
    from orient_model.config import SECTIONS, dump_defaults

    hook = _config_reference()
    assert hook.MARKER in (DOCS / hook.PAGE).read_text()
    page = hook.render()
    assert "```yaml\n" + dump_defaults().rstrip("\n") + "\n```" in page
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            row = next(line for line in page.splitlines() if line.startswith(f"| `{section}.{name}` |"))
            assert (info.description or "").replace("|", "\\|") in row
    # the option column comes from the commands: --max-error is autorotate's and serve's
    row = next(line for line in page.splitlines() if line.startswith("| `autorotate.max_error` |"))
    assert "`orient autorotate --max-error`" in row and "`orient serve --max-error`" in row
    assert "| `0.01` |" in row
