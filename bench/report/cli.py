"""The command: ``python bench/report.py [--results DIR] [--commentary FILE] [--out FILE]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .page import render

BENCH = Path(__file__).resolve().parent.parent
RESULTS = BENCH / "results"
COMMENTARY = BENCH / "commentary.md"
TARGET = BENCH.parent / "BENCHMARKS.md"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Renders BENCHMARKS.md from bench/results/*.json.")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--commentary", type=Path, default=COMMENTARY)
    p.add_argument("--out", type=Path, default=TARGET)
    args = p.parse_args(argv)
    results = load(args.results)
    commentary = args.commentary.read_text() if args.commentary.exists() else ""
    args.out.write_text(render(results, commentary))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def load(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
