"""``python -m mentor``: the engine from a shell.

Command names and JSON fields are a contract that scripts (the benchmarks
among them) rely on: ``search`` and ``ask`` give ``{file, page, page_label,
score, text, section, doc_id}`` per source, ``page`` being the 1-based physical page.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mentor.course.backup import BackupError, export_backup, import_backup
from mentor.course.library import RebuildRunning
from mentor.course.registry import UnknownDocument
from mentor.engine import Mentor
from mentor.generate.answer import QuestionError
from mentor.generate.llm import ModelNotFound, resolve_model_path
from mentor.index.retrieve import Retrieval
from mentor.index.store import StoreLocked
from mentor.ingest.pipeline import Outcome, Progress
from mentor.settings import Settings, SettingsError

# Errors whose message tells the user what to do: printed without a traceback.
USER_ERRORS = (
    StoreLocked,
    RebuildRunning,
    ModelNotFound,
    QuestionError,
    UnknownDocument,
    SettingsError,
    BackupError,
)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args, Settings.from_env())
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mentor", description="AI Mentor: cited answers from course files.")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--json", action="store_true", help="machine-readable output")
        c.set_defaults(run=run)
        return c

    c = command("ingest", cmd_ingest, "add PDFs, .txt and .md files or folders of them")
    c.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    c.add_argument(
        "--instructor-only",
        action="store_true",
        help="for the instructor only (a solution manual): never retrieved, quoted, cited or served to students",
    )
    c = command("search", cmd_search, "show the best matching pages for a question")
    c.add_argument("question", nargs="?")
    c.add_argument("-k", type=int, default=None, help="how many pages (default TOP_K)")
    c.add_argument("--stdin", action="store_true", help="one question per line in, one result per line out")
    c = command("ask", cmd_ask, "answer a question from the course, with sources")
    c.add_argument("question")
    command("docs", cmd_docs, "list the documents")
    c = command("remove", cmd_remove, "delete a document")
    c.add_argument("document", metavar="NAME_OR_ID")
    command("reindex", cmd_reindex, "rebuild the index from the stored files (resumes an interrupted rebuild)")
    command("resume", cmd_resume, "finish the uploads a crash or a restart cut off")
    command("optimize", cmd_optimize, "build the index's search structures for chunks the app added (stop the app first)")
    command("fetch-model", cmd_fetch_model, "download the model into MENTOR_HOME/models once")
    c = command("export", cmd_export, "write the whole index (files, vectors, course page) to one archive")
    c.add_argument("folder", type=Path, nargs="?", default=Path("."), help="where to write it (default: here)")
    c = command("import", cmd_import, "restore an exported archive into this index")
    c.add_argument("archive", type=Path)
    return p


def open_mentor(settings: Settings, **options) -> Mentor:
    """The course, with a note on stderr when its index should be rebuilt."""
    mentor = Mentor.open(settings, **options)
    if reason := mentor.library.rebuild_reason():
        print(f"note: {reason}; `python -m mentor reindex` rebuilds it (the app does so by itself).", file=sys.stderr)
    return mentor


def optimize_index(mentor: Mentor, quiet: bool) -> None:
    """Builds the index's search structures after a write, here where no
    student waits (the app leaves new chunks to the exhaustive search)."""
    if not quiet:
        print("  optimizing the index for search…", file=sys.stderr)
    mentor.library.optimize()


def cmd_ingest(args, settings: Settings) -> int:
    with open_mentor(settings, with_model=False) as mentor:
        results = mentor.ingest(
            args.paths, progress=None if args.json else show_progress, instructor_only=args.instructor_only
        )
        if any(r.outcome in (Outcome.ADDED, Outcome.REPLACED) for r in results):
            optimize_index(mentor, args.json)
    for r in results:
        print(json.dumps(r.to_json()) if args.json else r.line())
    return 0 if all(r.ok for r in results) else 1


def cmd_search(args, settings: Settings) -> int:
    questions = (line.strip() for line in sys.stdin) if args.stdin else [args.question or ""]
    with open_mentor(settings, with_model=False) as mentor:
        for question in questions:
            found = mentor.retrieve(question, args.k) if question else None
            hits = found.hits if found else []
            if args.json:
                print(json.dumps([h.to_json() for h in hits]), flush=True)
                continue
            for h in hits:
                print(f"{h.score:.3f}  {h.file}  {h.place} (#{h.page})  {h.text[:100]!r}")
            if found and not found.covered:
                print(refusal_line(found))
    return 0


def refusal_line(found: Retrieval) -> str:
    """Why the mentor would not answer a question these are the pages of
    (it names the closest ones instead), so that a search from a shell
    shows what a student would get."""
    why = f"the nearest passage scores {found.best_score:.2f}"
    if found.unknown_words:
        words = ", ".join(found.unknown_words)
        why += f", less {found.unknown_meaning:.2f} for the words found nowhere in the course ({words})"
    if found.best_rerank is not None:
        why += f"; the reranker's best score is {found.best_rerank:.2f}"
    return f"-- off the course: the mentor would not answer this ({why})"


def cmd_ask(args, settings: Settings) -> int:
    with open_mentor(settings) as mentor:
        answer = mentor.ask(args.question)
        for piece in answer:
            if not args.json:
                print(piece, end="", flush=True)
    if args.json:
        print(json.dumps(answer.to_json()))
    else:
        print("\n")
        for n, h in answer.cited():
            print(f"[{n}] {h.file}, {h.place} (score {h.score:.2f})")
    return 0


def cmd_docs(args, settings: Settings) -> int:
    with open_mentor(settings, with_model=False) as mentor:
        docs, cut_off = mentor.documents(), mentor.library.interrupted()
    if args.json:
        print(json.dumps([d.to_json() for d in docs + cut_off]))
        return 0
    for d in docs:
        print(f"{d.doc_id[:12]}  {d.pages:5d} pages {d.chunks:6d} chunks  {d.added_at}  {d.name}")
    for d in cut_off:
        print(f"{d.doc_id[:12]}  interrupted upload, kept: `python -m mentor resume` finishes it  {d.name}")
    return 0


def cmd_remove(args, settings: Settings) -> int:
    with open_mentor(settings, with_model=False) as mentor:
        doc = mentor.remove(args.document)
    print(json.dumps(doc.to_json()) if args.json else f"removed {doc.name}")
    return 0


def cmd_reindex(args, settings: Settings) -> int:
    with Mentor.open(settings, with_model=False) as mentor:
        status = mentor.reindex(progress=None if args.json else show_progress)
        optimize_index(mentor, args.json)
    if args.json:
        print(json.dumps({"done": not status.failed, "failed": status.failed}))
    else:
        print(status.line())
    return 1 if status.failed else 0


def cmd_resume(args, settings: Settings) -> int:
    with open_mentor(settings, with_model=False) as mentor:
        results = mentor.library.resume(progress=None if args.json else show_progress)
        if results:
            optimize_index(mentor, args.json)
    for r in results:
        print(json.dumps(r.to_json()) if args.json else r.line())
    if not results and not args.json:
        print("no interrupted uploads")
    return 0 if all(r.ok for r in results) else 1


def cmd_optimize(args, settings: Settings) -> int:
    with open_mentor(settings, with_model=False) as mentor:
        optimize_index(mentor, quiet=True)
        chunks = mentor.stats()["chunks"]
    print(json.dumps({"optimized": True, "chunks": chunks}) if args.json else f"index optimized: {chunks:,} chunks")
    return 0


def cmd_fetch_model(args, settings: Settings) -> int:
    if settings.openai_base_url:
        print(f"OPENAI_BASE_URL is set: answers come from {settings.openai_base_url}, nothing to fetch")
        return 0
    path = resolve_model_path(settings, progress=True)
    print(json.dumps({"model_path": str(path)}) if args.json else f"model ready: {path}")
    return 0


def cmd_export(args, settings: Settings) -> int:
    with open_mentor(settings, with_model=False) as mentor:
        archive = export_backup(mentor, args.folder)
    print(json.dumps({"archive": str(archive)}) if args.json else f"exported to {archive}")
    return 0


def cmd_import(args, settings: Settings) -> int:
    with open_mentor(settings, with_model=False) as mentor:
        summary = import_backup(mentor, args.archive)
        if summary.added:
            optimize_index(mentor, args.json)
    print(json.dumps(summary.to_json()) if args.json else "\n".join(summary.lines()))
    return 0


def show_progress(p: Progress) -> None:
    end = "\n" if p.pages_parsed >= p.pages_total else ""
    pages = f"{p.pages_parsed}/{p.pages_total} pages{p.by_ocr()}"
    print(f"\r  {p.file}: {pages}, {p.chunks_embedded} chunks", end=end, file=sys.stderr)
