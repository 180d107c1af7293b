"""Load: students asking at once through the app, one slot against many.

    python bench/load.py

`python app.py` (tiny model on the CPU, the Octave manual indexed) is
driven over loopback with gradio_client, the way a browser drives it, through
the chat's API endpoint. Two apps, one after the other, on copies of the
same index:

- serial, N_PARALLEL=1: one answer at a time, as before the scheduler;
  20 students ask at once (a barrier releases them together), each
  from an address of their own, as the pod's proxy forwards it;
- batched, N_PARALLEL as given (the device's default when not), in four
  rounds with the same questions:
  1. alone:   each question asked alone, one after another (the
              "20 × one answer");
  2. crowd:   every student asks at once;
  3. ingest:  the same crowd while the instructor uploads the R manuals
              through the console's upload endpoint;
  4. burst:   45 anonymous POST /api/chat at once, while /healthz is polled:
              how many are answered, how many refused at once, and whether
              the server stayed up.

Wall time and time to first token of the two crowds say what batching
buys. During ingestion the embedder and the model share the same CPU
cores, which slows both; that round says by how much, and whether
anything failed.
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

from mentor.web.render import waiting_note

API = "/chat"
FAILED_MARK = "could not finish this answer"
# How the chat shows a question's place in line: text, not the answer yet.
WAITING = waiting_note(0).split(":")[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdf", type=Path, nargs="+", help="the indexed files (default: the Octave manual)")
    p.add_argument("--upload", type=Path, nargs="+", help="files uploaded during the load (default: the R manuals)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl")
    p.add_argument("--students", type=int, default=20)
    p.add_argument("--answer-tokens", type=int, default=96, help="MAX_ANSWER_TOKENS of the app")
    p.add_argument("--n-parallel", type=int, help="N_PARALLEL of the batched app (default: the device's)")
    p.add_argument("--burst", type=int, default=45, help="POST /api/chat sent at once in the last round")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/load.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    if args.smoke:
        args.burst = min(args.burst, 4)
    begin()

    files = [f.resolve() for f in args.pdf] if args.pdf else corpus("octave")
    uploads = [f.resolve() for f in args.upload] if args.upload else corpus("r-manuals")
    questions = [q["question"] for q in load_jsonl(args.devset) if q.get("pages")][: args.students]
    if len(questions) < args.students:  # a small dev set: students repeat questions
        questions = [questions[i % len(questions)] for i in range(args.students)]

    source = prepared_home("smoke" if args.smoke else "octave", files)
    work = fresh_dir(OUT / ("load-smoke" if args.smoke else "load"))
    # Behind a proxy, as on the pod: each student's address is the one it forwards.
    env = {"MAX_ANSWER_TOKENS": str(args.answer_tokens), "BEHIND_PROXY": "1"}
    if args.n_parallel:
        env["N_PARALLEL"] = str(args.n_parallel)

    shutil.copytree(source, work / "serial-home")
    with App(work / "serial-home", work / "serial-app.log", **env, N_PARALLEL="1") as app:
        log(f"serial app (N_PARALLEL=1) ready in {app.wait_ready()['ready_s']:.1f} s")
        log(f"warm-up answer: {ask(app.url, questions[0], None)}")
        log(f"serial app: {len(questions)} students at once")
        serial_crowd = crowd_round(app.url, questions)

    shutil.copytree(source, work / "home")
    with App(work / "home", work / "app.log", **env) as app:
        ready = app.wait_ready()
        n_parallel = app.stats()["model_status"]["slots"]
        log(f"batched app (N_PARALLEL={n_parallel}) ready in {ready['ready_s']:.1f} s at {app.url}")
        warm = ask(app.url, questions[0], None)  # the first answer loads lazily-built parts
        log(f"warm-up answer: {warm}")

        log(f"alone: {len(questions)} questions, one at a time")
        serial = [ask(app.url, q, None, student=i) for i, q in enumerate(questions)]
        serial_s = sum(r["total_s"] for r in serial)

        log(f"crowd: {len(questions)} students at once")
        crowd = crowd_round(app.url, questions)

        log(f"crowd during an upload of {len(uploads)} files")
        upload = Upload(app, uploads)
        upload.started.wait(timeout=60)
        time.sleep(1.0)  # let the ingestion get going
        during = crowd_round(app.url, questions)
        upload.join()

        log(f"burst: {args.burst} POST /api/chat at once")
        burst = api_burst(app.url, questions, args.burst)

    def round_figures(r: dict) -> dict:
        return {
            "completed": sum(1 for s in r["students"] if s["ok"]),
            "errors": sum(1 for s in r["students"] if not s["ok"]),
            "wall_s": round(r["wall_s"], 2),
            "seen_s": summary([s["seen_s"] for s in r["students"] if s["seen_s"] is not None], digits=2),
            "ttft_s": summary([s["ttft_s"] for s in r["students"] if s["ttft_s"] is not None], digits=2),
            "total_s": summary([s["total_s"] for s in r["students"]], digits=2),
            "wall_vs_serial": round(r["wall_s"] / serial_s, 2) if serial_s else None,
        }

    crowd_f, during_f = round_figures(crowd), round_figures(during)
    errors = [s["error"] for r in (serial_crowd, crowd, during) for s in r["students"] if s.get("error")]
    figures = {
        "students": len(questions),
        "api_name": API,
        "model": tiny_gguf().name,
        "max_answer_tokens": args.answer_tokens,
        "n_parallel": n_parallel,
        "single_answer_s": round(serial_s / len(serial), 2),
        "serial_s": round(serial_s, 2),
        "serial": {
            "ttft_s": summary([r["ttft_s"] for r in serial if r["ttft_s"] is not None], digits=2),
            "total_s": summary([r["total_s"] for r in serial], digits=2),
            "errors": sum(1 for r in serial if not r["ok"]),
        },
        # The same crowd on an app with one slot (N_PARALLEL=1).
        "crowd_one_slot": round_figures(serial_crowd),
        "crowd_without_ingestion": crowd_f,
        # The headline figures: the crowd during the ingestion.
        **during_f,
        "ingestion": {"what": f"{len(uploads)} files ({', '.join(f.name for f in uploads)})", **upload.figures},
        "api_burst": burst,
        "error_messages": sorted(set(errors))[:10],
    }
    write_result("load", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


def ask(url: str, question: str, barrier: threading.Barrier | None, student: int = 0) -> dict:
    """One student: a fresh session, one question; times to the first text
    shown (the place in line, or the answer), to the answer's first piece,
    and to its end. Each student comes from an address of their own, as
    the pod's proxy reports it (the apps run with BEHIND_PROXY=1): the fair
    share counts addresses, and a class is not one machine."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False, headers={"X-Forwarded-For": student_address(student)})
    if barrier:
        barrier.wait()
    began = time.perf_counter()
    seen = first = None
    last_text = ""
    try:
        job = client.submit(question, [], api_name=API)
        for update in job:
            chat = update[0] if isinstance(update, (list, tuple)) and update and isinstance(update[0], list) else update
            text = _assistant_text(chat)
            if text and seen is None:
                seen = time.perf_counter() - began
            if text and first is None and not text.startswith(WAITING):
                first = time.perf_counter() - began
            last_text = text or last_text
        job.result()
        total = time.perf_counter() - began
        ok = bool(last_text) and FAILED_MARK not in last_text
        error = None if ok else f"answer: {last_text[:120]!r}"
        return {"ok": ok, "seen_s": seen, "ttft_s": first, "total_s": total, "error": error}
    except Exception as e:  # noqa: BLE001 - a failed student is a figure, not a crash
        return {
            "ok": False,
            "seen_s": seen,
            "ttft_s": first,
            "total_s": time.perf_counter() - began,
            "error": f"{type(e).__name__}: {e}"[:200],
        }
    finally:
        client.close()


def student_address(student: int) -> str:
    return f"10.0.{student // 250}.{student % 250 + 1}"


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
        results[i] = ask(url, questions[i], barrier, student=i)

    threads = [threading.Thread(target=student, args=(i,), daemon=True) for i in range(len(questions))]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return {"wall_s": time.perf_counter() - began, "students": results}


def api_burst(url: str, questions: list[str], count: int) -> dict:
    """``count`` POST /api/chat at once (no conversation: each its own
    client) while /healthz is polled every 0.2 s."""
    import httpx

    replies: list[dict] = []
    health: list[float] = []
    over = threading.Event()

    def post(i: int) -> None:
        began = time.perf_counter()
        try:
            status = httpx.post(f"{url}/api/chat", json={"message": questions[i % len(questions)]}, timeout=300).status_code
        except httpx.HTTPError as e:
            status = type(e).__name__
        replies.append({"status": status, "seconds": time.perf_counter() - began})

    def poll() -> None:
        while not over.is_set():
            began = time.perf_counter()
            try:
                httpx.get(f"{url}/healthz", timeout=30).raise_for_status()
                health.append(time.perf_counter() - began)
            except httpx.HTTPError:
                health.append(float("inf"))
            time.sleep(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    posts = [threading.Thread(target=post, args=(i,), daemon=True) for i in range(count)]
    began = time.perf_counter()
    for t in posts:
        t.start()
    for t in posts:
        t.join()
    wall = time.perf_counter() - began
    over.set()
    poller.join()
    by_status: dict[str, int] = {}
    for r in replies:
        by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
    return {
        "requests": count,
        "wall_s": round(wall, 2),
        "by_status": by_status,
        "answered_s": summary([r["seconds"] for r in replies if r["status"] == 200], digits=2),
        "refused_s": summary([r["seconds"] for r in replies if r["status"] in (429, 503)], digits=3),
        "healthz_s": summary([h for h in health if h != float("inf")], digits=3),
        "healthz_failed": sum(1 for h in health if h == float("inf")),
    }


class Upload(threading.Thread):
    """The instructor: logs in and uploads files through the console."""

    def __init__(self, app: App, files: list[Path]):
        super().__init__(daemon=True)
        self.app, self.files = app, files
        self.started = threading.Event()
        self.figures: dict = {}
        self.start()

    def run(self) -> None:
        import httpx
        from gradio_client import Client, handle_file

        from mentor.web.access import INSTRUCTOR_UPLOADS, UPLOAD_COOKIE

        client = Client(self.app.url, verbose=False, download_files=False)
        try:
            upload_pass = client.predict(self.app.password, api_name="/login")[-1]
            # The upload route takes files only with the pass's cookie, as the console's page gets it.
            given = httpx.post(self.app.url.rstrip("/") + INSTRUCTOR_UPLOADS, data={"pass": upload_pass})
            client.headers["Cookie"] = f"{UPLOAD_COOKIE}={given.cookies[UPLOAD_COOKIE]}"
            began = time.perf_counter()
            self.started.set()
            result = client.predict([handle_file(str(f)) for f in self.files], False, api_name="/upload")
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
