"""A recorder stand-in for the watch tests: copies a recording into place in chunks, with pauses.

Run as a child process: ``python tiqwriter_proc.py SRC DEST --chunks N --pause S``. The
header goes first (as an instrument writes it), then the data in ``N`` chunks with ``S``
seconds between them. Prints ``last-byte <unix time>`` on stdout after the last write.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def write_in_chunks(src: str, dest: str, chunks: int, pause: float) -> float:
    """Copy ``src`` to ``dest`` in ``chunks`` writes, ``pause`` s apart; return last-byte time."""
    data = open(src, "rb").read()
    header_end = int(data[18:27])  # <DataFile offset="NNNNNNNNN"
    body = data[header_end:]
    step = max(1, -(-len(body) // chunks))
    with open(dest, "wb") as f:
        f.write(data[:header_end])
        f.flush()
        for start in range(0, len(body), step):
            time.sleep(pause)
            f.write(body[start : start + step])
            f.flush()
            os.fsync(f.fileno())
        last = time.time()
    return last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dest")
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--pause", type=float, default=0.2)
    args = ap.parse_args(argv)
    last = write_in_chunks(args.src, args.dest, args.chunks, args.pause)
    print(f"last-byte {last:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
