"""Section 4: students at once, alone and during an ingestion, then a burst
of API requests (bench/load.py)."""

from ..section import Section

SECTION = Section("load", "## 4. Load: students at once during an ingestion", "load.md.j2", "load", "python bench/load.py")
