"""What every section of BENCHMARKS.md does, written once: its heading;
without its results file, the command that makes it; with it, where the
figures come from (command, machine, date, load), then its own template's
prose and tables (templates/section.md.j2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .templating import render


@dataclass(frozen=True)
class Section:
    name: str  # also the name of its block in bench/commentary.md
    heading: str
    body: str  # its template in templates/
    result: str | None = None  # bench/results/<result>.json; None: the section reads several
    command: str = ""  # what makes the results file
    missing_note: str = ""  # said after the command when the file is not there
    # More variables for the body, from the results file and all results.
    context: Callable[[dict, dict], dict] | None = None

    def render(self, results: dict[str, dict]) -> str:
        r = results.get(self.result) if self.result else None
        extra = self.context(r, results) if self.context and (r or not self.result) else {}
        return render("section.md.j2", section=self, r=r, results=results, **extra)
