"""Renders BENCHMARKS.md from bench/results/*.json.

    python bench/report.py

Every figure in BENCHMARKS.md comes from a results file, with the command
that produced it, the machine and the date. The code is the package
bench/report/: one module per section (sections/), each with a Jinja2
template of its prose and tables (templates/). The prose between the
sections is bench/commentary.md, a Jinja2 template with a block per
section in which every results file is a variable
(``{{ quality.retrieval.ours["hit@5"]|figure }}``), so no figure is typed by
hand. Verdicts ("worse than the baseline", "below the goal") are rules in
bench/report/verdicts.py.
"""

import sys

# Run as a script, bench/ is on sys.path, and its package report/ comes
# before this file of the same name.
from report.cli import main

if __name__ == "__main__":
    sys.exit(main())
