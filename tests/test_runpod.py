"""The Runpod pod template: image, start script and template agree.

There is no Docker engine here, so the Dockerfile is read as text. The start
script runs for real under bash, with temporary folders standing in for the
/workspace volume and stand-ins for nvidia-smi, the model fetch and the app.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
START = ROOT / "runpod" / "start.sh"
TEMPLATE = ROOT / "runpod" / "template.json"
WORKFLOW = ROOT / ".github" / "workflows" / "image.yml"
GUIDES = (ROOT / "README.md", ROOT / "runpod" / "README.md")
SETTINGS = ROOT / "mentor" / "settings.py"

# Read by huggingface_hub (and so by the embedder and the model download), not
# by mentor/settings.py.
HUB_VARS = {"HF_HOME", "HF_TOKEN"}
REQUIRED_CUDA_ARCHS = {"80", "86", "89", "90"}


# --- Reading the files --------------------------------------------------------


def template() -> dict:
    return json.loads(TEMPLATE.read_text())


def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def workflow_steps() -> list[dict]:
    (job,) = workflow()["jobs"].values()
    return job["steps"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped, continuations joined."""
    lines, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            instruction, _, args = line.partition(" ")
            lines.append((instruction.upper(), args.strip()))
    return lines


def dockerfile_final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    """The ENV of the image that runs (the last stage)."""
    env = {}
    for instruction, args in dockerfile_final_stage():
        if instruction == "ENV":
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def dockerfile_arg_defaults() -> dict[str, str]:
    defaults = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            defaults[name] = shlex.split(value)[0] if value else ""
    return defaults


def dockerfile_install_run() -> str:
    runs = [args for ins, args in dockerfile_instructions() if ins == "RUN" and "scripts/install.sh" in args]
    assert len(runs) == 1, "exactly one RUN calls scripts/install.sh"
    return runs[0]


def dockerfile_llama_run() -> str:
    runs = [args for ins, args in dockerfile_instructions() if ins == "RUN" and "CMAKE_ARGS=" in args]
    assert len(runs) == 1, "exactly one RUN compiles llama-cpp-python"
    return runs[0]


def dockerfile_stage(name: str) -> list[tuple[str, str]]:
    """The instructions of the stage named ``name`` (FROM ... AS name)."""
    instructions = dockerfile_instructions()
    starts = [i for i, (ins, _) in enumerate(instructions) if ins == "FROM"] + [len(instructions)]
    for begin, end in zip(starts, starts[1:]):
        if instructions[begin][1].split()[-1] == name:
            return instructions[begin:end]
    raise AssertionError(f"no stage {name}")


def cmake_args() -> str:
    """CMAKE_ARGS as llama-cpp-python's build receives it, ARG defaults filled in."""
    match = re.search(r'CMAKE_ARGS="([^"]*)"', dockerfile_llama_run())
    assert match, "the llama-cpp-python RUN sets CMAKE_ARGS"
    defaults = dockerfile_arg_defaults()
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults[m.group(1)], match.group(1))


def start_default(name: str) -> str:
    match = re.search(rf"^(?:export )?{name}=\$\{{{name}:-([^}}]*)\}}", START.read_text(), re.M)
    assert match, f"start.sh gives {name} a default"
    return match.group(1)


def settings_env_names() -> set[str]:
    return set(re.findall(r'get\("([A-Z0-9_]+)"', SETTINGS.read_text()))


def load_settings_module():
    # Loaded by path: mentor/__init__ may import the heavy parts.
    spec = importlib.util.spec_from_file_location("_runpod_test_settings", SETTINGS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up
    spec.loader.exec_module(module)
    return module


# --- template.json ------------------------------------------------------------


def test_template_is_a_private_pod_template_body():
    body = template()
    for field in ("name", "imageName", "containerDiskInGb", "volumeInGb", "volumeMountPath", "ports", "env", "readme"):
        assert body.get(field), f"template.json lacks {field}"
    assert body["isPublic"] is False
    assert body["isServerless"] is False
    assert all(isinstance(value, str) for value in body["env"].values()), "env values are strings"


# --- The published image -------------------------------------------------------


def test_template_workflow_and_guides_name_the_same_published_image():
    image = workflow()["env"]["IMAGE"]
    assert re.fullmatch(r"ghcr\.io/[a-z0-9._-]+/[a-z0-9._-]+", image), "GHCR names are lowercase"
    # Pods made from the template get the newest release; the guide says how to pin one.
    assert template()["imageName"] == f"{image}:latest"
    for guide in GUIDES:
        text = guide.read_text()
        assert f"{image}:latest" in text, f"{guide.name} names the published image"
        named = {m.rstrip(".") for m in re.findall(r"ghcr\.io/[\w./-]+", text)}
        assert named == {image}, f"{guide.name} names another image: {sorted(named - {image})}"


def test_workflow_publishes_on_a_version_tag_or_by_hand():
    on = workflow()["on"]
    assert on["push"] == {"tags": ["v*"]}
    assert "workflow_dispatch" in on
    assert workflow()["permissions"] == {"contents": "read", "packages": "write"}


def test_workflow_frees_disk_caches_llama_cpp_and_smoke_tests_before_it_pushes():
    steps = workflow_steps()
    runs = [step.get("run", "") for step in steps]
    free = next(i for i, run in enumerate(runs) if "rm -rf /usr/share/dotnet" in run)
    (build,) = [s for s in steps if s.get("uses", "").startswith("docker/build-push-action@")]
    assert "${{ env.IMAGE }}:buildcache" in build["with"]["cache-from"]
    assert "mode=max" in build["with"]["cache-to"], "every layer, the llama.cpp one included"
    assert build["with"]["load"] is True
    local = build["with"]["tags"]
    smoke = next(i for i, run in enumerate(runs) if "/app/scripts/smoke-image.sh" in run)
    assert "--network none" in runs[smoke] and local in runs[smoke]
    push = next(i for i, run in enumerate(runs) if "docker push" in run)
    assert free < steps.index(build) < smoke < push, "free disk, build, smoke test, then push the same image"
    assert f"docker tag {local}" in runs[push]


def test_port_agrees_between_template_dockerfile_and_start_script():
    body = template()
    assert body["ports"] == ["7860/http"]
    port = body["ports"][0].split("/")[0]
    exposed = [args for ins, args in dockerfile_instructions() if ins == "EXPOSE"]
    assert exposed == [port]
    assert start_default("PORT") == port
    assert dockerfile_env()["PORT"] == port
    assert body["env"]["PORT"] == port


def test_everything_that_must_last_is_under_the_volume_mount():
    body = template()
    mount = body["volumeMountPath"]
    assert mount == "/workspace"
    image_env = dockerfile_env()
    for name in ("MENTOR_HOME", "HF_HOME", "MENTOR_LOG_DIR"):
        assert image_env[name].startswith(mount + "/"), f"Dockerfile {name}={image_env[name]}"
        assert start_default(name).startswith(mount + "/"), f"start.sh default {name}"
    for name in ("MENTOR_HOME", "HF_HOME"):
        assert body["env"][name] == image_env[name]


def test_template_env_holds_only_variables_the_app_reads():
    read_by_app = settings_env_names()
    # Guards the parsing itself: if settings.py changes style, this says so.
    assert {"MENTOR_HOME", "MODEL_REPO", "N_GPU_LAYERS", "PORT"} <= read_by_app
    unknown = set(template()["env"]) - read_by_app - HUB_VARS
    assert not unknown, f"template.json sets variables nothing reads: {sorted(unknown)}"


def test_template_env_is_accepted_by_settings():
    env = template()["env"]
    settings_module = load_settings_module()
    settings = settings_module.Settings.from_env(env)
    assert settings.home == Path("/workspace/mentor")
    assert settings.port == 7860
    assert settings.n_gpu_layers == -1
    assert settings.n_ctx == 8192
    assert settings.model_file.endswith(".gguf")
    assert settings.model_repo.count("/") == 1


def test_template_takes_the_instructor_password_from_a_runpod_secret():
    env = template()["env"]
    assert env["MENTOR_ADMIN_PASSWORD"] == "{{ RUNPOD_SECRET_mentor_admin_password }}"
    assert "mentor_admin_password" in template()["readme"]


# --- Dockerfile ---------------------------------------------------------------


def test_dockerfile_builds_llama_cpp_for_cuda_and_for_no_particular_machine():
    args = cmake_args()
    flags = args.split()
    assert "-DGGML_CUDA=on" in flags
    assert "-DGGML_NATIVE=OFF" in flags
    archs_flag = [f for f in flags if f.startswith("-DCMAKE_CUDA_ARCHITECTURES=")]
    assert len(archs_flag) == 1
    archs = archs_flag[0].split("=", 1)[1].split(";")
    assert REQUIRED_CUDA_ARCHS <= {a.split("-")[0] for a in archs}, archs
    assert not {"native", "all", "all-major"} & set(archs)


def test_dockerfile_installs_with_the_shared_script_and_never_loads_llama_cpp():
    run = dockerfile_install_run()
    assert "VENV=" in run
    wheel_dir = re.search(r"--wheel-dir (\S+)", dockerfile_llama_run()).group(1)
    assert f"PIP_FIND_LINKS={wheel_dir}" in run, "the install takes the CUDA wheel built before it"
    assert "PIP_ONLY_BINARY=llama-cpp-python" in run, "and never compiles llama-cpp-python again"
    runs = " ".join(args for ins, args in dockerfile_instructions() if ins == "RUN")
    assert "import llama_cpp" not in runs
    assert "from llama_cpp" not in runs


def test_llama_cpp_layer_is_keyed_by_its_pin_alone():
    # BuildKit keys a COPY by content: everything the build stage has before
    # the compile must be the same until llama-cpp-python's pin changes.
    pin = dockerfile_stage("llama-pin")
    assert ("COPY", "requirements.txt /tmp/requirements.txt") in pin
    assert any(ins == "RUN" and "'^llama-cpp-python=='" in args for ins, args in pin)
    build = dockerfile_stage("build")
    before = build[: build.index(("RUN", dockerfile_llama_run()))]
    copies = [args for ins, args in before if ins in ("COPY", "ADD")]
    assert copies == ["--from=llama-pin /llama-cpp-python.txt /tmp/"]
    assert "-r /tmp/llama-cpp-python.txt" in dockerfile_llama_run()


def test_image_checks_at_build_that_llama_cpp_finds_its_libraries():
    final = dockerfile_final_stage()
    check = [i for i, (ins, args) in enumerate(final) if ins == "RUN" and "/app/scripts/smoke-image.sh libs" in args]
    app_copy = final.index(("COPY", ". /app"))
    assert check and check[0] > app_copy, "the check runs once the scripts are in the image"


def test_dockerignore_keeps_tests_benchmarks_and_course_data_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"tests", "bench", ".github", ".ci", ".venv", "mentor_data", "*.gguf", ".git"} <= ignored
    # What the image runs must not be ignored.
    assert not {"mentor", "app.py", "runpod", "scripts", "requirements.txt"} & ignored


def test_image_keeps_one_copy_of_each_llama_cpp_library():
    # tests/test_image.py runs the script itself.
    runs = [args for ins, args in dockerfile_stage("build") if ins == "RUN"]
    slim = "bash scripts/slim-llama-libs.sh /app/.venv/lib/python3*/site-packages"
    assert slim in runs
    assert runs.index(slim) > runs.index(dockerfile_install_run())


def test_dockerfile_builds_on_cuda_devel_and_runs_the_same_cuda():
    froms = [args for ins, args in dockerfile_instructions() if ins == "FROM"]
    assert "-devel-" in froms[0]
    version = froms[0].split(":")[1].split("-")[0]
    assert froms[-1].split(":")[1].split("-")[0] == version


def test_image_runs_on_cuda_base_with_only_the_cublas_llama_cpp_links():
    final = dockerfile_final_stage()
    assert "-base-" in final[0][1], "CUDA's runtime image carries 2 GB of libraries llama.cpp never loads"
    apt = " ".join(args for ins, args in final if ins == "RUN" and "apt-get install" in args)
    assert '"libcublas-${cuda_minor/./-}"' in apt
    assert "cuda_minor=${CUDA_VERSION%.*}" in apt
    assert ("ARG", "CUDA_VERSION") in final, "the stage sees the build's CUDA version"


def test_image_takes_torch_from_the_cpu_only_index():
    assert dockerfile_arg_defaults()["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert "TORCH_INDEX_URL=${TORCH_INDEX_URL}" in dockerfile_install_run()
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert '--index-url "$TORCH_INDEX_URL" "$torch_pin"' in install
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch==")]
    assert len(pins) == 1, "install.sh reads the one torch== pin"


def test_image_keeps_the_app_in_app_and_starts_with_start_script():
    final = dockerfile_final_stage()
    workdirs = [args for ins, args in final if ins == "WORKDIR"]
    assert workdirs[-1] == "/app"
    copies = [args for ins, args in final if ins == "COPY"]
    assert any(c.split()[-1] == "/app" for c in copies)
    assert not any("/workspace" in c for c in copies), "the volume would hide it"
    entry = " ".join(args for ins, args in final if ins in ("ENTRYPOINT", "CMD"))
    assert "/app/runpod/start.sh" in entry
    assert dockerfile_env()["PATH"].startswith("/app/.venv/bin:")


# --- start.sh -----------------------------------------------------------------


def fake_nvidia_smi(bin_dir: Path, *, works: bool) -> None:
    script = bin_dir / "nvidia-smi"
    if works:
        script.write_text("#!/bin/sh\necho 'NVIDIA RTX A5000, 24564 MiB'\n")
    else:
        script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    script.chmod(0o755)


@pytest.fixture
def pod(tmp_path):
    """A stand-in pod: a workspace folder and a bin folder first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_nvidia_smi(bin_dir, works=False)
    workspace = tmp_path / "workspace"
    return {"tmp": tmp_path, "bin": bin_dir, "workspace": workspace}


def run_start(pod, **overrides) -> subprocess.CompletedProcess:
    """Runs start.sh with a clean environment; None in overrides unsets."""
    workspace = pod["workspace"]
    env = {
        "PATH": f"{pod['bin']}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(pod["tmp"]),
        "MENTOR_HOME": str(workspace / "mentor"),
        "HF_HOME": str(workspace / "hf"),
        "MENTOR_LOG_DIR": str(workspace / "logs"),
        "RUNPOD_POD_ID": "k3xq9pod",
        "MENTOR_FETCH_CMD": "true",
        "MENTOR_APP_CMD": "echo app-started",
        "MENTOR_CPU_MAX": str(pod["tmp"] / "no-cgroup"),
    }
    env.update(overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        ["bash", str(START)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


def test_start_prepares_the_volume_and_prints_the_share_link(pod):
    result = run_start(pod)
    assert result.returncode == 0, result.stdout
    workspace = pod["workspace"]
    for folder in ("mentor", "mentor/models", "hf", "logs"):
        assert (workspace / folder).is_dir(), folder
    assert "https://k3xq9pod-7860.proxy.runpod.net" in result.stdout
    assert result.stdout.rstrip().endswith("app-started")


def test_start_share_link_follows_port(pod):
    result = run_start(pod, PORT="8123")
    assert "https://k3xq9pod-8123.proxy.runpod.net" in result.stdout


def test_start_without_pod_id_points_to_localhost(pod):
    result = run_start(pod, RUNPOD_POD_ID=None)
    assert "http://localhost:7860" in result.stdout


def test_start_writes_everything_to_the_log_file(pod):
    result = run_start(pod)
    log = (pod["workspace"] / "logs" / "mentor.log").read_text()
    assert "https://k3xq9pod-7860.proxy.runpod.net" in log
    assert "app-started" in log, "the app's own output reaches the log"
    assert log == result.stdout


def test_start_appends_to_the_log_across_restarts(pod):
    run_start(pod)
    run_start(pod)
    log = (pod["workspace"] / "logs" / "mentor.log").read_text()
    assert log.splitlines().count("app-started") == 2


def test_start_reports_cpu_mode_when_nvidia_smi_fails(pod):
    result = run_start(pod, MENTOR_APP_CMD="printenv N_GPU_LAYERS")
    assert result.returncode == 0, result.stdout
    assert "No GPU found" in result.stdout
    assert "running on CPU, N_GPU_LAYERS=0" in result.stdout
    assert result.stdout.rstrip().endswith("\n0"), "the app is told to keep the model on the CPU"


def test_start_reports_cpu_mode_when_nvidia_smi_is_missing(pod):
    (pod["bin"] / "nvidia-smi").unlink()
    # Only the tools the script uses, so a machine with a GPU cannot leak in.
    for tool in ("bash", "mkdir", "wc", "mv", "tee", "date", "df", "awk", "dirname", "printenv", "echo"):
        found = shutil.which(tool)
        if found:
            (pod["bin"] / tool).symlink_to(found)
    result = run_start(pod, PATH=str(pod["bin"]))
    assert result.returncode == 0, result.stdout
    assert "running on CPU, N_GPU_LAYERS=0" in result.stdout


def test_start_lists_the_gpu_when_there_is_one(pod):
    fake_nvidia_smi(pod["bin"], works=True)
    result = run_start(pod, MENTOR_APP_CMD="printenv N_GPU_LAYERS", N_GPU_LAYERS="-1")
    assert "GPU: NVIDIA RTX A5000, 24564 MiB" in result.stdout
    assert "No GPU found" not in result.stdout
    assert result.stdout.rstrip().endswith("-1"), "the setting is left alone"


def test_start_gives_torch_the_pods_cpu_quota_not_the_hosts_cores(pod):
    cpu_max = pod["tmp"] / "cpu.max"
    cpu_max.write_text("750000 100000\n")
    result = run_start(pod, MENTOR_CPU_MAX=str(cpu_max), MENTOR_APP_CMD="printenv OMP_NUM_THREADS")
    assert result.returncode == 0, result.stdout
    assert "this pod may use 8 cores" in result.stdout
    assert result.stdout.rstrip().endswith("\n8"), "7.5 cores of quota: 8 threads"


def test_start_leaves_threads_alone_without_a_quota_or_when_they_are_set(pod):
    cpu_max = pod["tmp"] / "cpu.max"
    cpu_max.write_text("max 100000\n")
    result = run_start(pod, MENTOR_CPU_MAX=str(cpu_max), MENTOR_APP_CMD="printenv OMP_NUM_THREADS")
    assert "OMP_NUM_THREADS=" not in result.stdout
    assert result.returncode != 0, "printenv: not set"
    cpu_max.write_text("400000 100000\n")
    result = run_start(pod, MENTOR_CPU_MAX=str(cpu_max), MENTOR_APP_CMD="printenv OMP_NUM_THREADS", OMP_NUM_THREADS="3")
    assert result.stdout.rstrip().endswith("\n3"), "the template's own setting wins"


def test_start_gives_actionable_hints_and_serves_passages_when_the_model_fetch_fails(pod):
    result = run_start(pod, MENTOR_FETCH_CMD="false")
    assert result.returncode == 0, result.stdout
    assert "could not be fetched" in result.stdout
    assert "HF_TOKEN" in result.stdout
    assert "MODEL_PATH" in result.stdout
    assert "Starting without a model (sources-only mode)" in result.stdout
    assert result.stdout.rstrip().endswith("app-started"), "students still get the passages"
    log = (pod["workspace"] / "logs" / "mentor.log").read_text()
    assert "HF_TOKEN" in log


def test_start_suggests_a_bigger_volume_when_disk_is_short(pod):
    result = run_start(pod, MENTOR_FETCH_CMD="false", MENTOR_MIN_FREE_GB="100000000")
    assert "out of disk" in result.stdout
    assert "Enlarge the volume" in result.stdout


def test_start_skips_the_model_fetch_with_an_openai_server(pod):
    result = run_start(pod, MENTOR_FETCH_CMD="false", OPENAI_BASE_URL="http://vllm:8000/v1")
    assert result.returncode == 0, result.stdout
    assert "nothing to fetch" in result.stdout
    assert result.stdout.rstrip().endswith("app-started")


def test_start_says_where_the_password_comes_from_without_printing_it(pod):
    result = run_start(pod, MENTOR_ADMIN_PASSWORD="tulip-quartz-71")
    assert "MENTOR_ADMIN_PASSWORD" in result.stdout
    assert "tulip-quartz-71" not in result.stdout


def test_start_explains_the_generated_password_when_none_is_set(pod):
    result = run_start(pod)
    assert "MENTOR_ADMIN_PASSWORD is not set" in result.stdout
    assert "prints it in this log" in result.stdout
    assert "mentor_admin_password" in result.stdout


def test_start_drops_a_runpod_secret_that_does_not_exist(pod):
    result = run_start(
        pod,
        MENTOR_ADMIN_PASSWORD="{{ RUNPOD_SECRET_mentor_admin_password }}",
        MENTOR_APP_CMD="env",
    )
    assert result.returncode == 0, result.stdout
    assert "a Runpod secret that was not found" in result.stdout
    assert not re.search(r"^MENTOR_ADMIN_PASSWORD=", result.stdout, re.M)


def test_start_becomes_the_app_so_signals_reach_it(pod):
    app = pod["bin"] / "fake-app"
    app.write_text('#!/bin/sh\necho "app pid $$"\n')
    app.chmod(0o755)
    proc = subprocess.Popen(
        ["bash", str(START)],
        env={
            "PATH": f"{pod['bin']}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(pod["tmp"]),
            "MENTOR_HOME": str(pod["workspace"] / "mentor"),
            "HF_HOME": str(pod["workspace"] / "hf"),
            "MENTOR_LOG_DIR": str(pod["workspace"] / "logs"),
            "MENTOR_FETCH_CMD": "true",
            "MENTOR_APP_CMD": str(app),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = proc.communicate(timeout=60)
    assert f"app pid {proc.pid}" in output


def test_start_script_is_executable():
    assert os.access(START, os.X_OK)
