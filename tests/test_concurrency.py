"""Concurrency: a class chats while the instructor uploads and deletes.

One Mentor, as the app holds it; every part is shared between threads: the
tiny model (its scheduler's slots and line), the embedder, the local Qdrant
and the registry.
"""

from __future__ import annotations

import threading
import time

import pytest

from mentor import Mentor
from mentor.ingest.pipeline import Outcome
from tests.pdfs import HANDBOOK, make_pdf

QUESTIONS = [
    "What does Kepler's first law say?",
    "How fast must an object go to escape the Earth's gravity?",
    "What is the difference between refracting and reflecting telescopes?",
    "When are office hours held?",
    "Where are office hours held?",
    "What does Kepler's second law say?",
    "How is escape velocity computed?",
    "What decides how much light a telescope collects?",
    "What should I bring to office hours?",
    "What is the best recipe for sourdough bread?",  # off the course: refused without the model
]

NEW_FILES = {
    "geology.pdf": [f"Geology lecture {n}: sedimentary layer {n} formed over {n * 3} million years." for n in range(1, 21)],
    "biology.pdf": [f"Biology lecture {n}: cell type {n} divides every {n + 4} hours in culture." for n in range(1, 21)],
    "chemistry.pdf": [f"Chemistry lecture {n}: compound {n} boils at {n * 11 + 40} degrees Celsius." for n in range(1, 21)],
}


@pytest.fixture
def busy(settings, embedder, tiny_model, handbook, tmp_path):
    """A course with the handbook and an old syllabus in it; short answers
    from one source keep twenty generations quick."""
    with Mentor.open(settings.replace(top_k=1, max_answer_tokens=8), embedder=embedder, model=tiny_model) as mentor:
        old = make_pdf(tmp_path / "old" / "syllabus-2023.pdf", ["The 2023 syllabus had weekly quizzes."], 0)
        assert [r.outcome for r in mentor.ingest([handbook, old])] == [Outcome.ADDED] * 2
        yield mentor


def test_twenty_chats_an_upload_and_a_delete_at_once_lose_and_duplicate_nothing(busy, tmp_path):
    mentor = busy
    files = [make_pdf(tmp_path / "new" / name, pages, 0) for name, pages in NEW_FILES.items()]
    questions = QUESTIONS * 2  # twenty students, each their own client
    start = threading.Barrier(len(questions) + 2)
    answers: dict[int, object] = {}
    ingested: list = []
    removed: list = []
    errors: list[BaseException] = []
    spans: dict[str, tuple[float, float]] = {}

    def run(name, job):
        def target():
            try:
                start.wait(timeout=30)
                began = time.monotonic()
                job()
                spans[name] = (began, time.monotonic())
            except BaseException as e:  # collected, asserted below
                errors.append(e)

        return threading.Thread(target=target, daemon=True)

    def chat(i: int, question: str):
        answers[i] = mentor.ask(question, client=f"10.0.1.{i} session:{i}").finish()  # address, then session

    threads = [run(f"chat {i}", lambda i=i, q=q: chat(i, q)) for i, q in enumerate(questions)]
    threads.append(run("ingest", lambda: ingested.extend(mentor.ingest(files))))
    threads.append(run("delete", lambda: removed.append(mentor.remove("syllabus-2023.pdf"))))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)

    assert not any(t.is_alive() for t in threads), "a thread never finished"
    assert errors == []
    # They really overlapped: answers were written while the upload ran.
    began, ended = spans["ingest"]
    assert any(began < spans[f"chat {i}"][1] < ended for i in range(len(questions)))
    # Every chat completed with text.
    assert sorted(answers) == list(range(len(questions)))
    assert all(a.text.strip() for a in answers.values())
    assert answers[len(QUESTIONS) - 1].refused and answers[len(questions) - 1].refused
    # The upload: every file whole.
    assert [(r.name, r.outcome, r.pages, r.chunks) for r in ingested] == [
        (name, Outcome.ADDED, 20, 20) for name in NEW_FILES
    ]
    # The delete: gone everywhere.
    [old] = removed
    assert mentor.index.count(old.doc_id) == 0 and mentor.stored_file(old.doc_id) is None
    # Exact counts: no chunk lost, none written twice.
    docs = mentor.documents()
    assert sorted(d.name for d in docs) == sorted(["handbook.pdf", *NEW_FILES])
    for d in docs:
        assert mentor.index.count(d.doc_id) == d.chunks
    assert mentor.index.count() == sum(d.chunks for d in docs) == len(HANDBOOK) + 60
    assert mentor.library.registry.with_status("ingesting") == []
    assert mentor.search("compound 7 boils", k=1)[0].file == "chemistry.pdf"
