"""Small records that cross process boundaries: what a worker did with one item.

Workers return an ``Outcome``; only the main process turns outcomes into ledger rows. Keep
this module free of heavy imports: it is pickled to and from worker processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

OK = "ok"
ERROR = "error"
NO_DATA = "no_data"
RESET = "reset"

#: Statuses an item can have in the ledger. ``reset`` forgets done-state (docs/ledger.md).
STATUSES = (OK, ERROR, NO_DATA, RESET)

#: ``kind`` scopes done-state: recordings are shared by ``process`` and ``watch``; batch
#: items are their own namespace.
KIND_IQ = "iq"
KIND_BATCH = "batch"


@dataclass
class Outcome:
    """One attempt at one item.

    Args:
        item: the item's identity (absolute path for recordings, the item string in batch).
        kind: ``iq`` or ``batch``; done-state is looked up by ``(kind, item)``.
        source: where the attempt came from: ``process``, ``watch:<folder>``,
            ``batch:<items file>``, ``import:<legacy file>``.
        status: ``ok``, ``error``, ``no_data`` or ``reset``.
        started, finished: UNIX seconds.
        size, mtime_ns: the input fingerprint, or None for items that are not files.
        settings_digest: digest of the settings that shape the products.
        products: absolute paths of the files written.
        error: short error text (one line) for ``error`` and ``no_data``; None for ``ok``.
        warning: what an ``ok`` item's products leave out or bend (an incomplete recording
            processed as far as it goes, events outside the x range), one line, or None.
    """

    item: str
    kind: str
    source: str
    status: str
    started: float
    finished: float
    size: int | None = None
    mtime_ns: int | None = None
    settings_digest: str = ""
    products: list[str] = field(default_factory=list)
    error: str | None = None
    extra: dict = field(default_factory=dict)
    warning: str | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.finished - self.started)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> dict:
        """This attempt as a run's ``--json`` summary lists it."""
        return {
            "item": self.item,
            "status": self.status,
            "products": self.products,
            "error": self.error,
            "warning": self.warning,
            "seconds": round(self.duration, 3),
        }
