"""Benchmark: the import preview (`ipr.exports.peers.choices`) of the corpus's largest peers' files.

Run from the repository root: `.venv/bin/python bench/peer_imports.py`. Needs
../shared/corpus beside the project. Prints the best of three wall times per file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ipr.exports import peers  # noqa: E402

FILES = (
    "elan/sample_3.0.eaf",
    "praat/sppas_F_F_B003-P8-token.TextGrid",
    "boris/test.boris",
    "boris/test_export_aggregated_events_test_full_1.tsv",
)


def main() -> None:
    base = ROOT.parent / "shared/corpus/annotation_formats"
    for name in FILES:
        data = (base / name).read_bytes()
        kind = peers.detect(data, name)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            found = peers.choices(data, kind)
            best = min(best, time.perf_counter() - start)
        total = sum(len(c.moments) for c in found)
        print(f"{name}\t{len(data):,} bytes\t{len(found)} choices\t{total:,} moments\t"
              f"{best * 1000:,.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
