"""``index.html``: the page template (package data) with the latest status embedded.

The status is embedded so the page shows data when opened from ``file://``, where browsers
block ``fetch``; the page then reloads itself instead of fetching ``status.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from crunchctl.www.status_doc import dumps

PAGE_NAME = "index.html"
_PLACEHOLDER = "__CRUNCHCTL_STATUS__"


@lru_cache(maxsize=1)
def template() -> str:
    """The page template shipped in the package (``crunchctl/www/template.html``)."""
    from importlib.resources import files

    text = files("crunchctl.www").joinpath("template.html").read_text(encoding="utf-8")
    if text.count(_PLACEHOLDER) != 1:
        raise RuntimeError("crunchctl/www/template.html: the status placeholder must occur once")
    return text


def embed_json(doc: Mapping[str, Any]) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&`` as such.

    A file name such as ``</script><script>...`` must not end the element; escaped as
    ``\\u003c`` it stays inside the JSON string, where ``JSON.parse`` restores it.
    """
    text = dumps(doc)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


#: Keys of a history entry the page does not use: left out of the embedded copy (size).
_NOT_SHOWN = ("item", "acquired_at", "processed_at", "image_text", "zoom_text")


def lean(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` without what the page never shows (absolute paths, duplicate times).

    The embedded copy grows with recorders x history; status.json keeps everything.
    """
    out = dict(doc)
    out["recorders"] = [
        {
            **{k: v for k, v in r.items() if k != "paths"},
            "history": [
                {k: v for k, v in e.items() if k not in _NOT_SHOWN} for e in r.get("history") or []
            ],
        }
        for r in doc.get("recorders") or []
    ]
    return out


#: index.html stays under this size: the embedded copy's history is shortened to fit (the
#: page served over http fetches status.json with the whole history at once).
PAGE_BUDGET = 48_000


def render(doc: Mapping[str, Any]) -> str:
    """The page with ``doc`` embedded (its :func:`lean` form), within ``PAGE_BUDGET``."""
    small = lean(doc)
    longest = max((len(r["history"]) for r in small["recorders"]), default=0)
    keep = longest
    while True:
        for r in small["recorders"]:
            r["history"] = r["history"][:keep]
        text = template().replace(_PLACEHOLDER, embed_json(small))
        if keep == 0 or len(text.encode("utf-8")) <= PAGE_BUDGET:
            return text
        keep = keep * 3 // 4


def write_index(www: str | os.PathLike, doc: Mapping[str, Any]) -> Path:
    """Write ``<www>/index.html`` atomically; return its path."""
    from crunchctl.quicklook.products import atomic_write

    path = Path(www) / PAGE_NAME
    with atomic_write(path) as f:
        f.write(render(doc).encode("utf-8"))
    return path
