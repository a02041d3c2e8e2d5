"""The product table: every product a recording can have, its file ending, the settings that
shape it, its web copy and its maker, in one place (docs/products.md).

Everything that names products reads this table: the settings, the done rule, the page, the
command line. No heavy imports: the CLI reads it before any numerics run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    """One product of a recording.

    Args:
        name: what ``--products`` calls it; also the kind the ledger records beside the
            file, which the done rule asks for (docs/ledger.md).
        ending: the file name after the recording's stem (``_zoom.png``).
        settings: the settings (config keys) that shape the file: a change to any of them
            makes a recording with this product due again (the settings digest).
        maker: ``module:attribute`` of the maker: called with the opened recording and the
            settings, it returns an object fed every chunk of power frames (``add``) and
            then asked to write the file (``write(f)``, into a temp file that is renamed
            into place). None: made by the frame stream of ``quicklook/task.make_products``
            itself (the pictures and the NPZ share its pooling and its writers).
        web: the name of its copy in the web folder, ``{folder}`` being the recorder
            folder's name; None: not copied.
        help: a few words for ``--products`` and docs.
        more: endings of further files of the same product (the spectrum's picture).
        folder: the product is one file per recorder folder, ``<output>/<folder>/<recorder
            folder name>.npz``, not one per recording (the campaign); None: per recording.
    """

    name: str
    ending: str
    settings: tuple[str, ...]
    maker: str | None = None
    web: str | None = None
    help: str = ""
    more: tuple[str, ...] = ()
    folder: str | None = None

    @property
    def endings(self) -> tuple[str, ...]:
        return (self.ending, *self.more)


_TABLE: dict[str, Product] = {}
#: The products of a recording when none are chosen.
DEFAULT = "png,zoom,npz"
#: Settings that products declared after ledgers were first written: they enter the
#: settings digest only away from their defaults, so recordings done before stay done.
LATER = frozenset({"peaks", "peak_snr", "db_min", "db_max", "scaling"})


def register(product: Product) -> None:
    """Add a product (or replace one of the same name); the table's order is canonical."""
    _TABLE[product.name] = product


# ------------------------------------------------------------------ the products (one entry each)
_FRAMES = ("lframes", "nframes", "window")
_LEVELS = ("scaling", "db_min", "db_max")  # the power's scaling and the colour range
_LINES = ("peaks", "peak_snr")
register(
    Product(
        "png",
        ".png",
        (*_FRAMES, *_LEVELS, "cmap"),
        web="{folder}.png",
        help="full-span spectrogram picture",
    )
)
register(
    Product(
        "zoom",
        "_zoom.png",
        (*_FRAMES, *_LEVELS, "n_avg", "zoom_center", "zoom_span", "cmap"),
        web="zoom_{folder}.png",
        help="zoomed spectrogram picture",
    )
)
register(Product("npz", ".npz", _FRAMES, help="the whole power spectrogram"))
# The mean-spectrum products are made together by quicklook/meanproducts.py; the campaign
# row of a recording is added in the main process (night/campaign.py).
register(
    Product(
        "spectrum",
        "_spectrum.npz",
        (*_FRAMES, *_LEVELS, *_LINES),
        more=("_spectrum.png",),
        help="mean power spectrum and its picture",
    )
)
register(
    Product(
        "peaks",
        "_peaks.csv",
        (*_FRAMES, "scaling", *_LINES),
        help="the strongest lines of the mean spectrum",
    )
)
register(
    Product(
        "campaign",
        ".npz",
        (*_FRAMES, *_LEVELS, "cmap"),
        folder="campaign",
        help="per recorder folder: every recording's mean spectrum as a waterfall",
    )
)


# ---------------------------------------------------------------------------------- lookups


def products() -> list[Product]:
    """Every product, in canonical order."""
    return list(_TABLE.values())


def names() -> list[str]:
    return list(_TABLE)


def product(name: str) -> Product:
    return _TABLE[name]


def normalise(value: str | Iterable[str]) -> str:
    """A products list (comma text or a sequence) in canonical order, e.g. ``"png,npz"``.

    Raises:
        ValueError: empty, or a name that is not in the table.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    chosen = {str(n).strip().lower() for n in items if str(n).strip()}
    if not chosen or not chosen <= _TABLE.keys():
        raise ValueError
    return ",".join(p for p in _TABLE if p in chosen)


def chosen(value: str) -> tuple[Product, ...]:
    """The products a ``products`` setting asks for, in canonical order."""
    wanted = set(normalise(value).split(","))
    return tuple(p for p in _TABLE.values() if p.name in wanted)


def settings_of(kinds: Iterable[str]) -> list[str]:
    """The settings that shape any of these products (unknown names shape nothing)."""
    keys: set[str] = set()
    for kind in kinds:
        entry = _TABLE.get(kind)
        if entry is not None:
            keys.update(entry.settings)
    return sorted(keys)


def kind_of(item: str, path: str) -> str | None:
    """Which product ``path`` is for the recording ``item`` (None: none of the table's).

    The name is ``<stem><ending>`` where the stem is the recording's own stem, or that stem
    followed by ``__<folder>-<hash>`` when two recordings share it; knowing the stem tells
    ``x_zoom.png`` (the full picture of ``x_zoom.tiq``) from the zoom picture of ``x.tiq``.
    """
    name = os.path.basename(path)
    parent = os.path.basename(os.path.dirname(path))
    for entry in _TABLE.values():  # a product of the recorder folder (the campaign)
        if entry.folder is not None and parent == entry.folder and name.endswith(entry.ending):
            return entry.name
    stem = os.path.splitext(os.path.basename(item))[0]
    by_length = sorted(
        ((e, p.name) for p in _TABLE.values() if p.folder is None for e in p.endings),
        key=lambda pair: -len(pair[0]),
    )
    for ending, kind in by_length:
        if name.endswith(ending):
            rest = name[: -len(ending)]
            if rest == stem or rest.startswith(stem + "__"):
                return kind
    for ending, kind in by_length:  # a name that does not follow the stem rule
        if name.endswith(ending):
            return kind
    return None


def web_copies(item: str, paths: Iterable[str]) -> dict[str, str]:
    """``{product name: path}`` of the products among ``paths`` that have a web copy."""
    out: dict[str, str] = {}
    for path in paths:
        kind = kind_of(item, path)
        if kind is not None and _TABLE[kind].web is not None:
            out.setdefault(kind, path)
    return out


def web_name(kind: str, folder: str) -> str:
    """The name of product ``kind``'s copy in the web folder for a recorder ``folder``."""
    pattern = _TABLE[kind].web
    if pattern is None:
        raise KeyError(f"product {kind} has no web copy")
    return pattern.format(folder=folder)


def describe(separator: str = ", ") -> str:
    """The product names for help texts (``png, zoom, npz, spectrum``)."""
    return separator.join(_TABLE)
