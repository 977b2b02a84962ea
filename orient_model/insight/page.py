"""One self-contained HTML page: every picture embedded (base64 PNG), so the file opens from
disk, is mailed, or is attached to a run, with no server; the same pictures as PNG files beside it.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from orient_model.files import atomic_write_bytes

PAGE = "index.html"


@dataclass
class Picture:
    name: str  # file name stem beside the page
    png: bytes
    caption: str = ""


@dataclass
class Section:
    """A picture (or a few) first, then one sentence on how to read it."""

    title: str
    pictures: list[Picture]
    reading: str
    notes: list[str] = field(default_factory=list)  # what could not be shown, and why


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{margin-top:2em;border-bottom:1px solid #ccc}
figure{display:inline-block;margin:.5em;vertical-align:top} figure img{max-width:100%}
figcaption{font-size:.85em;color:#444;max-width:520px}
.reading{font-size:1.05em;background:#f4f6f8;padding:.6em .8em;border-left:4px solid #4a7ab0}
.lead{font-size:1.15em} .verdict{font-size:1.3em;font-weight:bold} .note{color:#a05000}
"""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_page(
    out_dir: Path, title: str, lead: list[str], sections: list[Section], verdict: str | None = None
) -> Path:
    """Write ``index.html`` and the PNGs into ``out_dir``; returns the page's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        *([f"<p class='verdict' id='verdict'>{html.escape(verdict)}</p>"] if verdict else []),
        *(f"<p class='lead'>{html.escape(line)}</p>" for line in lead),
    ]
    for section in sections:
        anchor = slug(section.title)
        parts.append(f"<section id='{anchor}'><h2>{html.escape(section.title)}</h2>")
        for picture in section.pictures:
            name = f"{anchor}-{slug(picture.name)}.png"
            atomic_write_bytes(out_dir / name, picture.png)
            data = base64.b64encode(picture.png).decode()
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(picture.caption or name)}'>"
                + (f"<figcaption>{html.escape(picture.caption)}</figcaption>" if picture.caption else "")
                + "</figure>"
            )
        parts.append(f"<p class='reading'>{html.escape(section.reading)}</p>")
        parts += [f"<p class='note'>{html.escape(note)}</p>" for note in section.notes]
        parts.append("</section>")
    parts.append("</body></html>")
    page = out_dir / PAGE
    atomic_write_bytes(page, "\n".join(parts).encode())
    return page
