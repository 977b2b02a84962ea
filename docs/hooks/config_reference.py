"""MkDocs hook: the configuration reference, rendered at build time from ``orient_model/config.py``.

The page ``configuration.md`` holds the marker below; this hook replaces it with one table per
section of :data:`orient_model.config.SECTIONS` (every setting, its default, its environment
variable, the commands that take it as an option, its description) followed by the YAML that
``orient config`` prints (:func:`orient_model.config.dump_defaults`). Both come from the same
pydantic fields, so the page, ``orient config`` and ``--help`` cannot disagree: nothing here is
written twice.
"""

from __future__ import annotations

import click
from mkdocs.exceptions import PluginError

MARKER = "<!-- orient:config-reference -->"
PAGE = "configuration.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _options_by_setting() -> dict[tuple[str, str], list[str]]:
    """(section, setting) -> the `orient` commands offering it as an option, from the click tree."""
    from flows.cli import main

    found: dict[tuple[str, str], list[str]] = {}
    for name, command in sorted(main.commands.items()):
        for param in command.params:
            help_text = getattr(param, "help", None) or ""
            if "config " not in help_text:
                continue
            where = help_text.rsplit("config ", 1)[1].rstrip("]").strip()
            section, _, setting = where.partition(".")
            if setting == param.name:
                flags = "/".join([*param.opts, *param.secondary_opts])
                found.setdefault((section, setting), []).append(f"{name} {flags}")
    return found


def render() -> str:
    """The reference, as Markdown."""
    from orient_model.config import ENV_PREFIX, SECTIONS, _yaml_value, dump_defaults

    options = _options_by_setting()
    out: list[str] = []
    for section, model in SECTIONS.items():
        out += [f"## `{section}`: {(model.__doc__ or section).strip()}", ""]
        out += ["| setting | default | environment | option | description |"]
        out += ["| --- | --- | --- | --- | --- |"]
        for name, info in model.model_fields.items():
            default = _yaml_value(info.get_default(call_default_factory=True))
            env = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
            opts = "<br>".join(f"`orient {o}`" for o in options.get((section, name), [])) or "—"
            out.append(
                f"| `{section}.{name}` | `{_cell(default)}` | `{env}` | {opts} | {_cell(info.description or '')} |"
            )
        out.append("")
    out += ["## What `orient config` prints", "", "```yaml", dump_defaults().rstrip("\n"), "```", ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE} lost its marker {MARKER}: the configuration reference would be missing")
    try:
        return markdown.replace(MARKER, render())
    except (ImportError, click.ClickException) as exc:  # pragma: no cover - a broken install
        raise PluginError(f"cannot render the configuration reference: {exc}") from exc
