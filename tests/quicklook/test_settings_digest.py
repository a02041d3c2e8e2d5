"""A recording is redone when anything that shapes its products changed: every read option a
format declares and every setting a product declares (real ``crunchctl process`` runs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env, crunchctl_cmd
from crunchctl.formats.synth import RecordingSpec, make_recording_as

SPEC = RecordingSpec(nframes=8, lframes=1024, fs=1.0e6, center=100.0e6)

#: Two values per declared setting or read option: the first, then the second. A setting a
#: product or a format declares and that has no values here fails the walk below.
VALUES = {
    "lframes": ("1024", "512"),
    "nframes": ("4", "3"),
    "n_avg": ("1", "2"),
    "zoom_center": ("0", "1000"),
    "zoom_span": ("200000", "100000"),
    "window": ("rectangular", "hann"),
    "cmap": ("viridis", "gray"),
    "sample_rate": ("1e6", "2e6"),
    "center_frequency": ("100e6", "200e6"),
    "tdms_channels": ("RecordData/I,RecordData/Q", "RecordData/Q,RecordData/I"),
    "scaling": ("spectrum", "density"),
    "peaks": ("10", "3"),
    "peak_snr": ("10", "6"),
    "db_min": ("-200", "-190"),  # given together as --db-range MIN,MAX
    "db_max": ("0", "-10"),
}
#: A recording of each format, with the file name the writer takes.
FILES = {"tiq": "r.tiq", "sigmf": "r.sigmf-data", "tdms": "r.tdms", "wav": "r.wav", "raw": "r.cs16"}


def _process(tmp_path: Path, rec: Path, options: dict[str, str], *extra: str) -> dict:
    options = dict(options)
    if "db_min" in options or "db_max" in options:
        options["db_range"] = f"{options.pop('db_min', '-200')},{options.pop('db_max', '0')}"
    args = [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", v)]
    args = [a.replace("--center-frequency", "--center") for a in args]
    cmd = [
        *crunchctl_cmd(),
        "process",
        str(rec),
        "--output",
        str(tmp_path / "out"),
        "--ledger",
        str(tmp_path / "ledger"),
        "--log-file",
        str(tmp_path / "log.txt"),
        "--json",
        *args,
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_raw_recording_read_with_another_rate_and_centre_is_redone(tmp_path):
    rec = make_recording_as(tmp_path / "t.cs16", "raw", SPEC)
    base = {"lframes": "1024", "zoom_span": "200000"}
    first = _process(tmp_path, rec, {**base, "sample_rate": "2e6", "center_frequency": "433.92e6"})
    assert first["processed"] == 1
    again = _process(tmp_path, rec, {**base, "sample_rate": "4e6", "center_frequency": "1e6"})
    assert again["processed"] == 1 and again["skipped"] == 0, again
    with np.load(tmp_path / "out" / "t.npz") as z:
        assert float(z["sampling_frequency"]) == 4e6
        assert float(z["center_frequency"]) == 1e6
    # The same options once more: done.
    assert (
        _process(tmp_path, rec, {**base, "sample_rate": "4e6", "center_frequency": "1e6"})[
            "skipped"
        ]
        == 1
    )


def test_a_read_option_the_format_does_not_read_redoes_nothing(tmp_path):
    rec = make_recording_as(tmp_path / "t.tiq", "tiq", SPEC)
    base = {"lframes": "1024", "zoom_span": "200000"}
    assert _process(tmp_path, rec, base)["processed"] == 1
    # A .tiq says its own rate and centre: options for raw files do not make it due.
    doc = _process(tmp_path, rec, {**base, "sample_rate": "2e6", "center_frequency": "1e6"})
    assert doc["skipped"] == 1, doc


def _declared_formats() -> list[str]:
    from crunchctl import formats

    return formats.names()


def _declared_products() -> list[str]:
    from crunchctl import catalog

    return [p.name for p in catalog.products()]


@pytest.mark.parametrize("name", _declared_formats())
def test_every_read_option_a_format_declares_redoes_its_recordings(tmp_path, name):
    """Walks the declarations: a format added with a new option is covered."""
    from crunchctl import formats

    options = formats.registration(name).options
    rec = make_recording_as(tmp_path / FILES[name], name, SPEC)
    current = {"lframes": "1024", "zoom_span": "200000"}
    current.update({k: VALUES[k][0] for k in options})
    assert _process(tmp_path, rec, current)["processed"] == 1
    for key in options:
        current[key] = VALUES[key][1]
        doc = _process(tmp_path, rec, current)
        assert doc["processed"] == 1 and doc["skipped"] == 0, (key, doc)
    # The same options again: done.
    assert _process(tmp_path, rec, current)["skipped"] == 1


@pytest.mark.parametrize("name", _declared_products())
def test_every_setting_a_product_declares_redoes_its_recordings(tmp_path, name):
    """Walks the declarations: a product added with a new setting is covered."""
    from crunchctl import catalog

    product = catalog.product(name)
    assert product.settings, "a product is shaped by some settings"
    rec = make_recording_as(tmp_path / "r.tiq", "tiq", SPEC)
    current = {k: VALUES[k][0] for k in product.settings}
    current.setdefault("lframes", "1024")
    current.setdefault("zoom_span", "200000")
    extra = ("--products", name)
    assert _process(tmp_path, rec, current, *extra)["processed"] == 1
    for key in product.settings:
        current[key] = VALUES[key][1]
        doc = _process(tmp_path, rec, current, *extra)
        assert doc["processed"] == 1 and doc["skipped"] == 0, (key, doc)
    # A setting the product does not use leaves it done.
    if "cmap" not in product.settings:
        current["cmap"] = "gray" if current.get("cmap") != "gray" else "viridis"
        assert _process(tmp_path, rec, current, *extra)["skipped"] == 1


def test_every_setting_is_declared_or_said_not_to_shape_products():
    """A new setting must be declared by a product or a format, or named as not shaping."""
    import dataclasses

    from crunchctl import catalog, config, formats, identity
    from crunchctl.formats.base import ReadOptions

    declared = {k for p in catalog.products() for k in p.settings}
    declared |= {k for n in formats.names() for k in formats.registration(n).options}
    read = {f.name for f in dataclasses.fields(ReadOptions)}
    for key in config.KEYS:
        assert key in declared or key in config.NOT_SHAPING or key in identity.ALWAYS, key
    assert read <= declared | config.NOT_SHAPING


def test_a_file_read_as_a_forced_raw_sample_type_is_redone_with_another_rate(tmp_path):
    """``--format cf32`` names the raw format by a sample type: its read options count."""
    src = make_recording_as(tmp_path / "t.cf32", "raw", SPEC)
    rec = src.rename(tmp_path / "t.dat")
    base = {"lframes": "1024", "zoom_span": "200000"}
    assert (
        _process(tmp_path, rec, {**base, "sample_rate": "2e6"}, "--format", "cf32")["processed"]
        == 1
    )
    doc = _process(tmp_path, rec, {**base, "sample_rate": "4e6"}, "--format", "cf32")
    assert doc["processed"] == 1 and doc["skipped"] == 0, doc
