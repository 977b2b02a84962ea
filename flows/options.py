"""Command-line options derived from the configuration's fields: one description, one default.

``@config_options("autorotate")`` adds ``--max-error``, ``--apply``, ``--tta/--no-tta``, ... to a
command, with the field's description as help and its default shown in ``--help``. An option
the user did not give is None, so the config file and the environment still apply (see
:func:`orient_model.config.load_config`: flag > environment > file > default).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import click

from orient_model.config import SECTIONS


def _click_type(annotation: Any) -> tuple[Any, bool]:
    """(click type, is a list) for a field's annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _click_type(args[0])
    if origin is Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)]), False
    if origin is list:
        return _click_type(args[0])[0], True
    return {int: click.INT, float: click.FLOAT, str: click.STRING, bool: click.BOOL}.get(
        annotation, click.STRING
    ), False


def _shown(default: Any) -> str:
    if default is None:
        return "none"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list):
        return ", ".join(map(str, default)) or "none"
    return str(default)


def config_options(section: str, exclude: frozenset[str] = frozenset()):
    """Decorator: one option per setting of ``section`` (see the module doc)."""
    fields = SECTIONS[section].model_fields

    def decorate(fn):
        for name, info in reversed(list(fields.items())):
            if name in exclude:
                continue
            flag = "--" + name.replace("_", "-")
            kind, many = _click_type(info.annotation)
            default = info.get_default(call_default_factory=True)
            help_text = f"{info.description}  [default: {_shown(default)}; config {section}.{name}]"
            if info.annotation is bool:
                fn = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)(fn)
            else:
                fn = click.option(flag, name, type=kind, multiple=many, default=None, help=help_text)(fn)
        return fn

    return decorate


def overrides(section: str, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings of ``section`` given on the command line, as :func:`load_config` takes them."""
    fields = SECTIONS[section].model_fields
    given = {}
    for name, value in values.items():
        if name not in fields or value is None or value == ():
            continue
        given[name] = list(value) if isinstance(value, tuple) else value
    return {section: given}
