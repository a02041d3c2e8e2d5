"""crunchctl.config: precedence, checks, origins and notes of the settings."""

from __future__ import annotations

import os

import pytest

from crunchctl import config
from crunchctl.errors import ConfigError


def test_precedence_and_origins(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[settings]\nlframes = 2048\nn_avg = 3\nzoom_span = 5e5\n")
    s = config.resolve(cfg, {"lframes": 4096}, environ={"CRUNCHCTL_N_AVG": "7"})
    assert (s.lframes, s.n_avg, s.zoom_span) == (4096, 7, 5e5)
    origin = dict(s.origins)
    assert origin["lframes"] == "command line"
    assert origin["n_avg"] == "environment CRUNCHCTL_N_AVG"
    assert origin["zoom_span"] == f"config file {cfg}"
    lines = config.describe(s)
    assert "lframes = 4096  (command line)" in lines
    assert "window = 'rectangular'  (default)" in lines


@pytest.mark.parametrize("value", ["1", "8", "99999999999999999999", str((1 << 24) + 1)])
def test_frame_length_out_of_range_is_a_config_error(value):
    with pytest.raises(ConfigError, match=rf"--lframes {value}.*from 16 to 16777216"):
        config.resolve(overrides={"lframes": value}, environ={})


def test_notes_for_odd_frame_length_and_too_many_workers():
    s = config.resolve(
        overrides={"lframes": 1000, "workers": (os.cpu_count() or 1) + 3}, environ={}
    )
    notes = config.notes(s)
    assert any("lframes 1000 is not a power of two" in n and "512 or 1024" in n for n in notes)
    assert any("workers on a machine with" in n for n in notes)
    assert config.notes(config.resolve(overrides={"lframes": 1024, "workers": 1}, environ={})) == []


def test_products_are_canonical_and_checked():
    s = config.resolve(overrides={"products": " npz,PNG, png"}, environ={})
    assert s.products == "png,npz"
    with pytest.raises(ConfigError, match="comma list out of png, zoom, npz, spectrum"):
        config.resolve(overrides={"products": "png,movie"}, environ={})
    with pytest.raises(ConfigError):
        config.resolve(overrides={"products": ""}, environ={})


def test_booleans_from_the_environment():
    assert config.resolve(environ={"CRUNCHCTL_VERIFY_CHECKSUM": "yes"}).verify_checksum is True
    assert config.resolve(environ={"CRUNCHCTL_VERIFY_CHECKSUM": "off"}).verify_checksum is False
    with pytest.raises(ConfigError, match="CRUNCHCTL_VERIFY_CHECKSUM.*true or false"):
        config.resolve(environ={"CRUNCHCTL_VERIFY_CHECKSUM": "maybe"})
