#!/usr/bin/env bash
# Starts AI Mentor on a Runpod pod: prepares the volume, says how to reach the
# mentor, fetches the model once, then replaces itself with the app (exec), so
# the pod's stop signal reaches Python.
#
# Only /workspace (the pod's volume) survives the pod, so everything that must
# last goes there. Every path and command comes from an environment variable,
# which lets the tests run this script on any machine:
#   MENTOR_HOME         data root: index, uploads, models  (/workspace/mentor)
#   HF_HOME             Hugging Face cache (the embedder)   (/workspace/hf)
#   MENTOR_LOG_DIR      where mentor.log is written         (/workspace/logs)
#   PORT                the port the app serves             (7860)
#   MENTOR_APP_CMD      the app, run from the app folder    (python app.py)
#   MENTOR_FETCH_CMD    fetches the model unless it is there (python -m mentor fetch-model)
#   MENTOR_MIN_FREE_GB  free space a model download wants   (10)
#   MENTOR_CPU_MAX      the pod's CPU quota (cgroup v2)      (/sys/fs/cgroup/cpu.max)
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MENTOR_HOME=${MENTOR_HOME:-/workspace/mentor}
export HF_HOME=${HF_HOME:-/workspace/hf}
MENTOR_LOG_DIR=${MENTOR_LOG_DIR:-/workspace/logs}
export PORT=${PORT:-7860}
MENTOR_APP_CMD=${MENTOR_APP_CMD:-python app.py}
MENTOR_FETCH_CMD=${MENTOR_FETCH_CMD:-python -m mentor fetch-model}
MENTOR_MIN_FREE_GB=${MENTOR_MIN_FREE_GB:-10}
MENTOR_CPU_MAX=${MENTOR_CPU_MAX:-/sys/fs/cgroup/cpu.max}
# Output goes through a pipe to the log: Python must not hold it back.
export PYTHONUNBUFFERED=1
LOG=$MENTOR_LOG_DIR/mentor.log
# Past this size the log is moved to mentor.log.1 at start.
LOG_ROTATE_BYTES=$((50 * 1024 * 1024))

say() { printf '[start] %s\n' "$*"; }
warn() { printf '[start] WARNING: %s\n' "$*"; }
fail() { printf '[start] ERROR: %s\n' "$*"; }
# Free space, in whole GB, of the file system holding a folder.
free_gb_at() { df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print int($4 / 1048576) }' || true; }

# --- The volume -------------------------------------------------------------
if ! mkdir -p "$MENTOR_HOME/models" "$HF_HOME" "$MENTOR_LOG_DIR"; then
    fail "cannot create $MENTOR_HOME, $HF_HOME and $MENTOR_LOG_DIR."
    fail "Give the pod a volume mounted at /workspace (template: volumeMountPath /workspace)."
    exit 1
fi
if [ -f "$LOG" ] && [ "$(wc -c <"$LOG")" -gt "$LOG_ROTATE_BYTES" ]; then
    mv -f "$LOG" "$LOG.1"
fi
# From here on, everything goes both to the pod's log view and to the file.
exec > >(tee -a "$LOG") 2>&1

say "AI Mentor starting, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "data: $MENTOR_HOME   Hugging Face cache: $HF_HOME   log: $LOG"

mount_point=$(df -P "$MENTOR_HOME" 2>/dev/null | awk 'NR == 2 { print $6 }' || true)
free_gb=$(free_gb_at "$MENTOR_HOME")
free_gb=${free_gb:-0}
say "free space where the data lives: ${free_gb} GB"
if [ "$mount_point" = "/" ]; then
    warn "$MENTOR_HOME is on the container disk, not on a volume: uploads, the index"
    warn "and the model are lost when the pod stops. Give the pod a volume at /workspace."
fi

# --- Secrets ----------------------------------------------------------------
# A template that names a Runpod secret which does not exist hands the app the
# reference itself; used as a password or token it would be wrong, so drop it.
for name in MENTOR_ADMIN_PASSWORD HF_TOKEN OPENAI_API_KEY QDRANT_API_KEY; do
    value=${!name:-}
    case $value in
        *RUNPOD_SECRET_*)
            warn "$name is '$value', a Runpod secret that was not found."
            warn "Create that secret (Runpod console > Secrets) and restart the pod; until then $name is ignored."
            unset "$name"
            ;;
    esac
done

# --- Access -----------------------------------------------------------------
if [ -n "${RUNPOD_POD_ID:-}" ]; then
    share_url="https://${RUNPOD_POD_ID}-${PORT}.proxy.runpod.net"
else
    share_url="http://localhost:${PORT}"
fi
say "Link to share with students (and to open the instructor console): $share_url"
if [ -n "${MENTOR_ADMIN_PASSWORD:-}" ]; then
    say "Instructor password: the value of MENTOR_ADMIN_PASSWORD (the Runpod secret"
    say "mentor_admin_password in the template). It is not printed."
else
    say "Instructor password: MENTOR_ADMIN_PASSWORD is not set, so the app makes one on its"
    say "first start, keeps it under $MENTOR_HOME and prints it in this log. To choose your"
    say "own, create the Runpod secret mentor_admin_password and restart the pod."
fi

# --- GPU --------------------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1 \
    && gpus=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null) \
    && [ -n "$gpus" ]; then
    while IFS= read -r gpu; do
        say "GPU: $gpu"
    done <<<"$gpus"
else
    export N_GPU_LAYERS=0
    warn "No GPU found (nvidia-smi is missing or failed): running on CPU, N_GPU_LAYERS=0."
    warn "A 7B model then writes a few words a second. If this pod should have a GPU,"
    warn "deploy it on a GPU pod. Note that this image's llama.cpp is built for CUDA and"
    warn "loads only where the NVIDIA driver is present; without one, set OPENAI_BASE_URL"
    warn "to a model server instead."
fi

# --- CPU --------------------------------------------------------------------
# The embedder runs on the CPU (the image's torch is the CPU build). A pod may
# use a share of the host's cores, its cgroup quota, yet sees all of them, and
# torch starts a thread per core it sees: dozens of threads on a few cores'
# worth of time. Tell it the quota, unless OMP_NUM_THREADS is set already.
if [ -z "${OMP_NUM_THREADS:-}" ] && [ -r "$MENTOR_CPU_MAX" ] \
    && read -r quota period <"$MENTOR_CPU_MAX" && [ "$quota" != max ] && [ "${period:-0}" -gt 0 ]; then
    export OMP_NUM_THREADS=$(((quota + period - 1) / period))
    say "CPU: this pod may use ${OMP_NUM_THREADS} cores of the $(nproc --all 2>/dev/null || echo '?') it sees; OMP_NUM_THREADS=${OMP_NUM_THREADS}"
fi

cd "$APP_DIR"

# --- The model --------------------------------------------------------------
if [ -n "${OPENAI_BASE_URL:-}" ]; then
    say "Model: answers come from the server at $OPENAI_BASE_URL; nothing to fetch."
else
    if [ -n "${MODEL_PATH:-}" ]; then
        say "Model: $MODEL_PATH"
    else
        say "Model: ${MODEL_FILE:-the default file} from ${MODEL_REPO:-the default repository} (Hugging Face)"
        say "It is downloaded once into $MENTOR_HOME/models; an interrupted download resumes."
    fi
    if [ "$free_gb" -lt "$MENTOR_MIN_FREE_GB" ]; then
        warn "only ${free_gb} GB free; a model download may need up to ${MENTOR_MIN_FREE_GB} GB"
        warn "(Mistral-7B Q5_K_M is 5.1 GB). If the model is not on the volume yet, enlarge"
        warn "the volume (Pod > Edit Pod > Volume Disk) and restart the pod."
    fi
    read -r -a fetch_cmd <<<"$MENTOR_FETCH_CMD"
    fetch_status=0
    "${fetch_cmd[@]}" || fetch_status=$?
    if [ "$fetch_status" -ne 0 ]; then
        warn "the model could not be fetched (exit status $fetch_status). What to do, by cause:"
        warn "- gated or private model (401, 403): accept its licence on Hugging Face, store a"
        warn "  token as the Runpod secret hf_token, set HF_TOKEN={{ RUNPOD_SECRET_hf_token }}"
        warn "  in the pod's environment, and restart the pod."
        warn "- not found (404): check MODEL_REPO and MODEL_FILE."
        warn "- no network: copy the .gguf file onto the volume and set MODEL_PATH to it."
        free_now=$(free_gb_at "$MENTOR_HOME")
        free_now=${free_now:-0}
        if [ "$free_now" -lt "$MENTOR_MIN_FREE_GB" ]; then
            warn "- out of disk: only ${free_now} GB free on the volume. Enlarge the volume"
            warn "  (Pod > Edit Pod > Volume Disk) and restart; the download resumes."
        fi
        warn "The messages above this one say which cause it was. Full log: $LOG"
        # The course is still useful without a model: students get the
        # passages that match their question, with their page links, and the
        # instructor console says why there are no answers.
        warn "Starting without a model (sources-only mode); restart the pod once the cause is fixed."
    fi
fi

# --- The app ----------------------------------------------------------------
say "Starting: $MENTOR_APP_CMD (in $APP_DIR, port $PORT)"
read -r -a app_cmd <<<"$MENTOR_APP_CMD"
exec "${app_cmd[@]}"
