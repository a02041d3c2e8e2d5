"""``crunchctl reset``: forget done-state; the next run processes exactly those items."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

from conftest import child_env, crunchctl_cmd, invoke as run, small_args


def test_reset_then_rerun_processes_exactly_the_reset_items(tmp_path, make_tiq):
    recs = [make_tiq(f"r{i}.tiq", nframes=1) for i in range(3)]
    assert run("process", *recs, *small_args(tmp_path)).exit_code == 0
    led = ["--ledger", tmp_path / "ledger"]
    r = run("reset", "--item", "*r1.tiq", *led, "--dry-run")
    assert r.exit_code == 0 and "would reset iq" in r.stdout and "r1.tiq" in r.stdout
    assert "1 item would be reset (dry run)" in r.stdout
    again = run("process", *recs, *small_args(tmp_path))
    assert "processed 0, failed 0, skipped 3" in again.stdout  # dry run changed nothing
    r = run("reset", "--item", "*r1.tiq", *led, "--yes")
    assert r.exit_code == 0 and "reset 1 item" in r.stdout
    again = run("process", *recs, "--json", *small_args(tmp_path))
    doc = json.loads(again.stdout)
    assert [o["item"] for o in doc["outcomes"]] == [str(recs[1])]
    # History is kept: r1 has ok, reset, ok.
    st = json.loads(run("status", *led, "--json", "--item", "*r1.tiq").stdout)
    assert st["rows"] == 3 and st["attempts_by_status"]["reset"] == 1


def test_reset_errors_only(tmp_path, make_tiq):
    good = make_tiq("good.tiq", nframes=1)
    bad = tmp_path / "bad.tiq"
    bad.write_bytes(b"")
    run("process", good, bad, *small_args(tmp_path))
    r = run("reset", "--errors", "--ledger", tmp_path / "ledger", "--yes")
    assert "reset 1 item" in r.stdout
    st = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json").stdout)
    assert st["by_status"]["reset"] == 1 and st["by_status"]["ok"] == 1


def test_reset_needs_a_selection_and_confirmation(tmp_path, make_tiq):
    run("process", make_tiq("a.tiq", nframes=1), *small_args(tmp_path))
    r = run("reset", "--ledger", tmp_path / "ledger")
    assert r.exit_code == 2 and "say what to reset" in r.stderr
    r = run("reset", "--all", "--ledger", tmp_path / "ledger")  # no terminal, no --yes
    assert r.exit_code == 2 and "add --yes" in r.stderr
    st = json.loads(run("status", "--ledger", tmp_path / "ledger", "--json").stdout)
    assert st["by_status"]["ok"] == 1
    r = run("reset", "--status", "no_data", "--ledger", tmp_path / "ledger", "--yes")
    assert r.exit_code == 0 and "nothing to reset" in r.stdout


def test_reset_of_a_ledger_that_does_not_exist_is_a_usage_error(tmp_path):
    r = run("reset", "--all", "--yes", "--ledger", tmp_path / "typo")
    assert r.exit_code == 2 and f"ledger folder {tmp_path / 'typo'} does not exist" in r.stderr
    assert not (tmp_path / "typo").exists()


def _on_a_terminal(args: list[str], answer: bytes, timeout: float = 60.0) -> tuple[int, str]:
    """Run crunchctl with stdin, stdout and stderr on a pseudo-terminal; answer its prompt."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        crunchctl_cmd() + args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=child_env(),
        close_fds=True,
    )
    os.close(slave)
    out, answered, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if not answered and b"[y/N]" in out:
                os.write(master, answer)
                answered = True
            if proc.poll() is not None and not ready:
                break
        return proc.wait(timeout=10), out.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_reset_answered_no_on_a_terminal_resets_nothing(tmp_path, make_tiq):
    run("process", make_tiq("a.tiq", nframes=1), *small_args(tmp_path))
    led = ["--ledger", str(tmp_path / "ledger")]
    code, out = _on_a_terminal(["reset", "--all", *led], b"n\n")
    assert "Reset 1 item? [y/N]" in out
    assert code == 0 and "nothing reset" in out and "Aborted" not in out
    st = json.loads(run("status", *led, "--json").stdout)
    assert st["by_status"]["ok"] == 1 and st["by_status"]["reset"] == 0
    code, out = _on_a_terminal(["reset", "--all", *led], b"y\n")
    assert code == 0 and "reset 1 item" in out
    assert json.loads(run("status", *led, "--json").stdout)["by_status"]["reset"] == 1
