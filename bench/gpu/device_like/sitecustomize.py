"""The dry run's steps see the GPU machine's Python packages, near enough.

``bench/gpu/run.py --cpu-dry-run`` puts this folder first on its steps'
PYTHONPATH, so Python imports this file at start. It makes the packages named
in ``GPU_DRY_RUN_HIDE`` (bench/gpu/carry.py's NOT_CARRIED: installed here,
absent there) fail to import, so that a step which would need one on the
device fails here too, in CI, rather than on a rarely lent GPU.
"""

import importlib.abc
import os
import sys

HIDDEN = frozenset(filter(None, os.environ.get("GPU_DRY_RUN_HIDE", "").split(",")))


class HideFromDryRun(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(
                f"No module named {name!r}: the GPU machine lacks it and the carry does not bring it "
                "(bench/gpu/carry.py NOT_CARRIED), so the dry run hides it",
                name=name,
            )
        return None


if HIDDEN:
    sys.meta_path.insert(0, HideFromDryRun())
