"""The scripts the Docker image runs, run here on this checkout's own venv.

No Docker engine is needed: each script works on folders and a Python that
the test hands it, the same way the image's build and CI hand it theirs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import tiny_gguf

ROOT = Path(__file__).resolve().parents[1]
SLIM = ROOT / "scripts" / "slim-llama-libs.sh"


def installed_site_packages() -> Path:
    # Located, not imported: this process need not load llama.cpp.
    return Path(importlib.util.find_spec("llama_cpp").origin).parent.parent


def copy_of_llama_cpp_python(site: Path) -> None:
    """llama-cpp-python as pip installed it: the package, its dist-info and
    the CMake install tree (lib/, include/) its wheel also carries."""
    installed = installed_site_packages()
    site.mkdir()
    shutil.copytree(installed / "llama_cpp", site / "llama_cpp", symlinks=True)
    (dist_info,) = installed.glob("llama_cpp_python-*.dist-info")
    shutil.copytree(dist_info, site / dist_info.name)
    for tree in ("lib", "include"):
        if (installed / tree).is_dir():
            shutil.copytree(installed / tree, site / tree, symlinks=True)


def test_slim_keeps_one_copy_of_each_llama_cpp_library_and_llama_cpp_still_generates(tmp_path):
    site = tmp_path / "site-packages"
    copy_of_llama_cpp_python(site)
    (site / "lib").mkdir(exist_ok=True)
    (site / "lib" / "another-package.txt").write_text("not llama-cpp-python's")
    lib = site / "llama_cpp" / "lib"
    copies = sorted(p.name for p in lib.iterdir() if p.is_file() and not p.is_symlink())
    assert len(copies) >= 3 * 4, f"the wheel's three copies a library: {copies}"

    result = subprocess.run(["bash", str(SLIM), str(site)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    files = [p for p in lib.iterdir() if not p.is_symlink()]
    links = [p for p in lib.iterdir() if p.is_symlink()]
    assert len(files) * 3 == len(copies), sorted(p.name for p in files)
    for link in links:
        target = link.resolve()
        assert target.parent == lib and target in files, f"{link.name} -> {target}"
        assert target.name.startswith(link.name)
    # The install tree is gone; the other package's file in lib/ is not.
    assert not (site / "include").exists()
    assert [p.name for p in (site / "lib").iterdir()] == ["another-package.txt"]

    # llama_cpp from the slimmed copy loads its libraries and generates.
    probe = (
        "import sys, llama_cpp\n"
        "assert llama_cpp.__file__.startswith(sys.argv[1]), llama_cpp.__file__\n"
        "model = llama_cpp.Llama(model_path=sys.argv[2], n_ctx=128, n_threads=2, verbose=False)\n"
        "print(model.create_completion('The capital of France is', max_tokens=4)['choices'][0]['text'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    loaded = subprocess.run(
        [sys.executable, "-c", probe, str(site), str(tiny_gguf())], env=env, capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip(), "four tokens were generated"


# --- scripts/smoke-image.sh ---------------------------------------------------

SMOKE = ROOT / "scripts" / "smoke-image.sh"

FAKE_APP = """
import http.server, json, os, sys

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"ready": False, "model": None, "documents": 0, "chunks": 0}).encode()
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health).serve_forever()
"""


def smoke(tmp_path: Path, *steps: str, **env: str) -> subprocess.CompletedProcess:
    """The smoke script on this checkout: this venv's python first on PATH,
    and an nvidia-smi that fails, as on a machine without a GPU."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    nvidia_smi = bin_dir / "nvidia-smi"
    nvidia_smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    nvidia_smi.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    return subprocess.run(
        ["bash", str(SMOKE), *steps],
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_smoke_passes_on_this_checkout_without_a_gpu_or_network(tmp_path):
    result = smoke(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[smoke] libs: the " in out
    assert "torch 2.13.0" in out
    assert "[smoke] cli: usage: python -m mentor" in out
    assert "[smoke] ocr: tesseract " in out and ", with English" in out
    # Offline and without a GPU, the app comes up serving passages only.
    assert '"ready":true,"mode":"sources-only"' in out.replace(" ", ""), out
    assert out.rstrip().endswith("[smoke] ok: libs imports cli ocr app")


def test_smoke_passes_when_the_app_answers_healthz_and_stops_it(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(FAKE_APP)
    pid_file = tmp_path / "app.pid"
    result = smoke(tmp_path, "app", MENTOR_FETCH_CMD="true", MENTOR_APP_CMD=f"python {app} {pid_file}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '/healthz answered {"ready": false' in result.stdout
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the app is stopped afterwards"


def test_smoke_fails_on_a_python_traceback(tmp_path):
    app = tmp_path / "broken.py"
    app.write_text("import a_module_the_image_lacks\n")
    result = smoke(tmp_path, "app", MENTOR_FETCH_CMD="true", MENTOR_APP_CMD=f"python {app}")
    assert result.returncode != 0
    assert "FAILED: app: a Python traceback" in result.stderr
    assert "a_module_the_image_lacks" in result.stderr, "the log's tail says what broke"


def test_smoke_fails_when_the_app_neither_serves_nor_stops(tmp_path):
    result = smoke(tmp_path, "app", MENTOR_FETCH_CMD="true", MENTOR_APP_CMD="sleep 600", SMOKE_SECONDS="3")
    assert result.returncode != 0
    assert "neither answered /healthz nor stopped within 3 s" in result.stderr


def test_smoke_refuses_an_unknown_step(tmp_path):
    result = smoke(tmp_path, "lbis")
    assert result.returncode != 0
    assert "unknown step 'lbis'" in result.stderr
