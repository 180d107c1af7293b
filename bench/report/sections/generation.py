"""Section 3, generation: one answer at a time against llama.cpp's own
chat completion, and many at once (bench/generate.py)."""

from ..section import Section

SECTION = Section(
    "generation",
    "### Generation: time to first token and tokens/s",
    "generation.md.j2",
    "generate",
    "python bench/generate.py",
)
