"""How figures are written in BENCHMARKS.md; each is also a Jinja2 filter."""

from __future__ import annotations


def fmt(value, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        text = f"{value:,.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text}{unit}"


def pct(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def mib(n_bytes) -> float | None:
    return None if n_bytes is None else n_bytes / 2**20


def ratio(ours, base) -> float | None:
    return ours / base if ours and base else None


def x(value) -> str:
    return "—" if value is None else f"{value:.2f}×"


def x_small(ours: float | None, baseline: float | None) -> str:
    """``x(ours / baseline)``, written as 1/N× when it would round to 0.00×."""
    r = ratio(ours, baseline)
    return f"1/{1 / r:,.0f}×" if r and r < 0.05 else x(r)


def bad(reason: str) -> str:
    return f"**bad: {reason}**"


def p50_p95(d: dict) -> str:
    return f"{fmt(d.get('p50'), 1)} / {fmt(d.get('p95'), 1)} s"


def ms(d: dict | None, digits: int = 2) -> str:
    """``p50 / p95`` of a timing summary, with how many were taken when a
    time budget cut it short."""
    if not d or not d.get("n"):
        return "—"
    capped = f" (n={d['n']})" if d.get("capped") else ""
    return f"{fmt(d['p50'], digits)} / {fmt(d['p95'], digits)}{capped}"


def figure(value, spec: str = "") -> str:
    """A figure in the commentary's prose: ``spec`` is a Python format spec;
    without one, three digits below 1 and one above."""
    if spec:
        return format(value, spec)
    return fmt(value, 3 if isinstance(value, float) and abs(value) < 1 else 1)




def burst_line(burst: dict) -> str:
    """Answered / refused at once, of a burst of requests."""
    by = burst["by_status"]
    refused = sum(n for status, n in by.items() if status in ("429", "503"))
    return f"{by.get('200', 0)} / {refused}"


FILTERS = {f.__name__: f for f in (fmt, pct, mib, ratio, x, x_small, bad, p50_p95, ms, figure, burst_line)}
