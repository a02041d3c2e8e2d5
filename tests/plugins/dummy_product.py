"""A product added the way docs/ARCHITECTURE.md says: one table entry plus its maker.

``python dummy_product.py ARGS...`` runs ``crunchctl ARGS...`` with the entry registered.
The product is a text file with the number of frames and the loudest bin of each frame.
"""

from __future__ import annotations

import sys

from crunchctl import catalog

ENTRY = catalog.Product(
    name="peakbins",
    ending="_peakbins.txt",
    settings=("lframes", "nframes"),
    maker="dummy_product:PeakBins",
    help="loudest bin per frame",
)


class PeakBins:
    """The maker: fed every chunk of power frames, then asked to write its file."""

    def __init__(self, recording: object, settings: object) -> None:
        self.rows: list[int] = []

    def add(self, power) -> None:  # noqa: ANN001 - numpy array (frames, bins)
        self.rows.extend(int(i) for i in power.argmax(axis=1))

    def write(self, f) -> None:  # noqa: ANN001 - a binary file, renamed into place after
        f.write(f"{len(self.rows)} frames\n".encode())
        f.write(" ".join(map(str, self.rows)).encode() + b"\n")


def main() -> None:
    catalog.register(ENTRY)
    from crunchctl.cli import main as crunchctl_main

    sys.argv = ["crunchctl", *sys.argv[1:]]
    crunchctl_main()


if __name__ == "__main__":
    main()
