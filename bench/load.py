"""Load: students asking at once through the app while an ingestion runs.

    python bench/load.py

`python app.py` (tiny model on the CPU, the Octave manual indexed) is
driven over loopback with gradio_client, the way a browser drives it, through
the chat's API endpoint. Three rounds, with the same questions each time:

1. serial:  each question asked alone, one after another: the time the
            answers take when nothing waits (the "20 × one answer");
2. crowd:   every student asks at once (a barrier releases them together);
3. ingest:  the same crowd while the instructor uploads the R manuals
            through the console's upload endpoint.

Wall time of a crowd over the serial sum tells whether the model sat idle
while work was queued (in process, answers run one at a time by design: the
goal is a ratio near 1, not below it). During ingestion the embedder and
the model share the same CPU cores, which slows both; that round says by
how much, and whether anything failed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path

from common import (
    DEVSET,
    OUT,
    App,
    begin,
    corpus,
    fresh_dir,
    load_jsonl,
    log,
    prepared_home,
    summary,
    tiny_gguf,
    write_result,
)

API = "/chat"
FAILED_MARK = "could not finish this answer"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdf", type=Path, nargs="+", help="the indexed files (default: the Octave manual)")
    p.add_argument("--upload", type=Path, nargs="+", help="files uploaded during the load (default: the R manuals)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl")
    p.add_argument("--students", type=int, default=20)
    p.add_argument("--answer-tokens", type=int, default=96, help="MAX_ANSWER_TOKENS of the app")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/load.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    files = [f.resolve() for f in args.pdf] if args.pdf else corpus("octave")
    uploads = [f.resolve() for f in args.upload] if args.upload else corpus("r-manuals")
    questions = [q["question"] for q in load_jsonl(args.devset) if q.get("pages")][: args.students]
    if len(questions) < args.students:  # a small dev set: students repeat questions
        questions = [questions[i % len(questions)] for i in range(args.students)]

    source = prepared_home("smoke" if args.smoke else "octave", files)
    work = fresh_dir(OUT / ("load-smoke" if args.smoke else "load"))
    shutil.copytree(source, work / "home")
    with App(work / "home", work / "app.log", MAX_ANSWER_TOKENS=str(args.answer_tokens)) as app:
        ready = app.wait_ready()
        log(f"app ready in {ready['ready_s']:.1f} s at {app.url}")
        warm = ask(app.url, questions[0], None)  # the first answer loads lazily-built parts
        log(f"warm-up answer: {warm}")

        log(f"serial: {len(questions)} questions, one at a time")
        serial = [ask(app.url, q, None) for q in questions]
        serial_s = sum(r["total_s"] for r in serial)

        log(f"crowd: {len(questions)} students at once")
        crowd = crowd_round(app.url, questions)

        log(f"crowd during an upload of {len(uploads)} files")
        upload = Upload(app, uploads)
        upload.started.wait(timeout=60)
        time.sleep(1.0)  # let the ingestion get going
        during = crowd_round(app.url, questions)
        upload.join()

    def round_figures(r: dict) -> dict:
        return {
            "completed": sum(1 for s in r["students"] if s["ok"]),
            "errors": sum(1 for s in r["students"] if not s["ok"]),
            "wall_s": round(r["wall_s"], 2),
            "ttft_s": summary([s["ttft_s"] for s in r["students"] if s["ttft_s"] is not None], digits=2),
            "total_s": summary([s["total_s"] for s in r["students"]], digits=2),
            "wall_vs_serial": round(r["wall_s"] / serial_s, 2) if serial_s else None,
        }

    crowd_f, during_f = round_figures(crowd), round_figures(during)
    errors = [s["error"] for r in (crowd, during) for s in r["students"] if s.get("error")]
    figures = {
        "students": len(questions),
        "api_name": API,
        "model": tiny_gguf().name,
        "max_answer_tokens": args.answer_tokens,
        "single_answer_s": round(serial_s / len(serial), 2),
        "serial_s": round(serial_s, 2),
        "serial": {
            "ttft_s": summary([r["ttft_s"] for r in serial if r["ttft_s"] is not None], digits=2),
            "total_s": summary([r["total_s"] for r in serial], digits=2),
            "errors": sum(1 for r in serial if not r["ok"]),
        },
        "crowd_without_ingestion": crowd_f,
        # The headline figures: the crowd during the ingestion.
        **during_f,
        "ingestion": {"what": f"{len(uploads)} files ({', '.join(f.name for f in uploads)})", **upload.figures},
        "error_messages": sorted(set(errors))[:10],
    }
    write_result("load", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


def ask(url: str, question: str, barrier: threading.Barrier | None) -> dict:
    """One student: a fresh session, one question; times to the first
    non-empty piece of the answer and to its end."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    if barrier:
        barrier.wait()
    began = time.perf_counter()
    first = None
    last_text = ""
    try:
        job = client.submit(question, [], api_name=API)
        for update in job:
            chat = update[0] if isinstance(update, (list, tuple)) and update and isinstance(update[0], list) else update
            text = _assistant_text(chat)
            if text and first is None:
                first = time.perf_counter() - began
            last_text = text or last_text
        job.result()
        total = time.perf_counter() - began
        ok = bool(last_text) and FAILED_MARK not in last_text
        return {"ok": ok, "ttft_s": first, "total_s": total, "error": None if ok else f"answer: {last_text[:120]!r}"}
    except Exception as e:  # noqa: BLE001 - a failed student is a figure, not a crash
        return {
            "ok": False,
            "ttft_s": first,
            "total_s": time.perf_counter() - began,
            "error": f"{type(e).__name__}: {e}"[:200],
        }
    finally:
        client.close()


def _assistant_text(chat) -> str:
    if not isinstance(chat, list) or not chat:
        return ""
    last = chat[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        content = last.get("content")
        if isinstance(content, list):  # Gradio 6 message content parts
            content = " ".join(str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in content)
        return str(content or "")
    return ""


def crowd_round(url: str, questions: list[str]) -> dict:
    barrier = threading.Barrier(len(questions) + 1)
    results: list[dict | None] = [None] * len(questions)

    def student(i: int) -> None:
        results[i] = ask(url, questions[i], barrier)

    threads = [threading.Thread(target=student, args=(i,), daemon=True) for i in range(len(questions))]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return {"wall_s": time.perf_counter() - began, "students": results}


class Upload(threading.Thread):
    """The instructor: logs in and uploads files through the console."""

    def __init__(self, app: App, files: list[Path]):
        super().__init__(daemon=True)
        self.app, self.files = app, files
        self.started = threading.Event()
        self.figures: dict = {}
        self.start()

    def run(self) -> None:
        from gradio_client import Client, handle_file

        client = Client(self.app.url, verbose=False, download_files=False)
        try:
            client.predict(self.app.password, api_name="/login")
            began = time.perf_counter()
            self.started.set()
            result = client.predict([handle_file(str(f)) for f in self.files], api_name="/upload")
            html = str(result[0] if isinstance(result, (list, tuple)) else result)
            self.figures = {"seconds": round(time.perf_counter() - began, 1), "outcome": _outcome(html)}
        except Exception as e:  # noqa: BLE001
            self.figures = {"outcome": f"failed: {type(e).__name__}: {e}"[:200]}
        finally:
            self.started.set()
            client.close()


def _outcome(html: str) -> str:
    import re

    text = re.sub(r"<[^>]+>", " ", html)
    added = len(re.findall(r": added", text))
    failed = len(re.findall(r": failed", text))
    return f"{added} added, {failed} failed"


if __name__ == "__main__":
    sys.exit(main())
