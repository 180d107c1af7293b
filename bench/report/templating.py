"""The Jinja2 environment BENCHMARKS.md is rendered with: the templates in
templates/, the formatting helpers as filters, the verdicts and the
``table`` and ``provenance`` macros as globals."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2
from jinja2.utils import missing as NO_OBJECT

from .formatting import FILTERS
from .verdicts import GOALS, VERDICTS

TEMPLATES = Path(__file__).resolve().parent / "templates"


class NotMeasured(jinja2.StrictUndefined):
    """A results file the commentary names that is not there: its figures
    read ``(not measured: quality)``. A figure missing from a file that is
    there is an error, as is any other unknown name."""

    __slots__ = ()

    def _file_missing(self) -> bool:
        return self._undefined_obj is NO_OBJECT and self._undefined_hint is None

    def __str__(self) -> str:
        if self._file_missing():
            return f"(not measured: {self._undefined_name.replace('_', '-')})"
        return super().__str__()

    def __getattr__(self, name: str):
        if name[:2] != "__" and self._file_missing():
            return self
        return super().__getattr__(name)

    def __getitem__(self, key):
        return self if self._file_missing() else self._fail_with_undefined_error()


def _not_measured_passes(f):
    """A filter that writes a missing file's figure as ``(not measured: ...)``."""

    @functools.wraps(f)
    def wrapped(value, *args, **kwargs):
        return str(value) if isinstance(value, NotMeasured) else f(value, *args, **kwargs)

    return wrapped


def paragraph(text: str) -> str:
    """A part of the page: its own paragraphs, then a blank line; nothing if empty."""
    return text.rstrip() + "\n\n" if text else ""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters |= {name: _not_measured_passes(f) for name, f in FILTERS.items()}
    env.filters["paragraph"] = paragraph
    env.globals |= FILTERS | VERDICTS | GOALS
    macros = env.get_template("macros.md.j2").module
    env.globals |= {"table": macros.table, "provenance": macros.provenance, "missing": macros.missing}
    return env


ENV = _environment()


def render(template: str, **context) -> str:
    return ENV.get_template(template).render(**context)


def commentary_blocks(text: str, results: dict[str, dict]) -> dict[str, str]:
    """The blocks of bench/commentary.md, each rendered with every results
    file as a variable (``ingest-r-manuals.json`` as ``ingest_r_manuals``)."""
    template = ENV.overlay(undefined=NotMeasured).from_string(text)
    context = template.new_context({name.replace("-", "_"): r for name, r in results.items()})
    try:
        return {name: "".join(block(context)) for name, block in template.blocks.items()}
    except jinja2.UndefinedError as e:
        raise SystemExit(f"bench/commentary.md: a figure is not in its results file: {e}") from None
