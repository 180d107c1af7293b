"""AI Mentor: course files in, cited answers out.

>>> from mentor import Mentor, Settings
>>> with Mentor.open(Settings.from_env()) as mentor:  # doctest: +SKIP
...     mentor.ingest([Path("course/")])
...     answer = mentor.ask("How do I read a CSV file?")
...     print("".join(answer), answer.cited())
"""

from mentor.settings import Settings

__all__ = ["Mentor", "Settings"]


def __getattr__(name: str):
    # Imported on first use, so that the page-extraction child process
    # (which imports mentor.documents) does not load the whole engine.
    if name == "Mentor":
        from mentor.engine import Mentor

        return Mentor
    raise AttributeError(name)
