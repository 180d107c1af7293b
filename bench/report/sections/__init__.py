"""One module per section of BENCHMARKS.md; SECTIONS is their order on the page."""

from . import (
    coldstart,
    generation,
    gpu,
    highlight,
    ingestion,
    latency,
    load,
    ocr,
    profile,
    quality,
    repetition,
    second_embedder,
    summary,
    tuning,
)

SECTIONS = [
    m.SECTION
    for m in (summary, ingestion, profile, quality, tuning, second_embedder, latency, generation, repetition, coldstart, load, gpu, ocr, highlight)
]
