"""Cold start: from `python app.py` to GET /healthz saying ready.

    python bench/coldstart.py

The model file is already on disk (MODEL_PATH: the tiny test GGUF) and
MENTOR_HOME holds an index of the Octave manual, so this is a restart of a
pod that has run before: imports, the embedder, the index and the model
loaded, the web app up. Each start is a fresh process; the OS file cache is
warm after the first. There is no baseline figure: the starter pipeline has
no server.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from common import (
    OUT,
    App,
    begin,
    corpus,
    fresh_dir,
    log,
    prepared_home,
    summary,
    tiny_gguf,
    write_result,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdf", type=Path, nargs="+", help="the indexed files (default: the Octave manual)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/coldstart.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    files = [f.resolve() for f in args.pdf] if args.pdf else corpus("octave")
    source = prepared_home("smoke" if args.smoke else "octave", files)
    work = fresh_dir(OUT / ("coldstart-smoke" if args.smoke else "coldstart"))
    runs = []
    for i in range(args.runs):
        home = work / f"home-{i}"
        shutil.copytree(source, home)  # each start opens an index no process has touched
        with App(home, work / f"app-{i}.log") as app:
            ready = app.wait_ready()
            stats = app.stats()  # the course's size: /healthz tells nothing about the course
        log(f"start {i + 1}: port {ready['port_open_s']:.1f} s, ready {ready['ready_s']:.1f} s")
        runs.append(ready)
    figures = {
        "app_command": "python app.py",
        "model": tiny_gguf().name,
        "documents": stats.get("documents"),
        "chunks": stats.get("chunks"),
        "runs": len(runs),
        "ready_s": summary([r["ready_s"] for r in runs], digits=2),
        "port_open_s": summary([r["port_open_s"] for r in runs if r["port_open_s"] is not None], digits=2),
        "each_ready_s": [round(r["ready_s"], 2) for r in runs],
    }
    write_result("coldstart", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
