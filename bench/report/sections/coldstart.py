"""Section 3, cold start: process start to ready (bench/coldstart.py)."""

from ..section import Section

SECTION = Section("coldstart", "### Cold start", "coldstart.md.j2", "coldstart", "python bench/coldstart.py")
