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
