"""The course's data and its one writer: the library (add, replace,
delete, rebuild, import, recovery), the registry, the kept originals,
backups, course settings, the question log and insights.

Every write to a course goes through ``library.Library``. It may import
``mentor.ingest``, ``mentor.index`` and ``mentor.settings``.
"""
