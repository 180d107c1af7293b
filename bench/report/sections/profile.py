"""Where ingestion spends its time (bench/profile_ingest.py)."""

from ..section import Section

SECTION = Section(
    "profile",
    "## Where ingestion spends its time (profile)",
    "profile.md.j2",
    "profile-ingest",
    "python bench/profile_ingest.py",
)
