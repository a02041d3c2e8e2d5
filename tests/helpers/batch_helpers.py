"""Helpers of the batch tests: the options every batch run of a test shares, items files."""

from __future__ import annotations

from pathlib import Path


def common(tmp_path: Path) -> list:
    """``--output``, ``--ledger``, ``--log-file`` inside ``tmp_path``, and small figures."""
    return [
        "--output",
        tmp_path / "out",
        "--ledger",
        tmp_path / "ledger",
        "--log-file",
        tmp_path / "batch.log",
        "--dpi",
        "40",
    ]


def items_file(tmp_path: Path, lines, name: str = "items.txt") -> Path:
    """An items file of ``lines``, one item a line."""
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
