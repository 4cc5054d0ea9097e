#!/usr/bin/env bash
# Shared by the run_scripts: check the dataset, submit a job to rn50tui's queue, follow its log.
#
# Environment (all optional):
#   RN50TUI_DB            the job store (default ./jobs.db), as for every rn50tui command
#   RN50TUI_SUBMIT_FLAGS  more `rn50tui submit` options, e.g. "--device cpu --cards 1"
#   RN50TUI_ENGINE_FLAGS  more engine flags, after the preset's (they win), e.g. "--epochs 1"
#   RN50TUI_NO_FOLLOW=1   submit and return at once instead of following the log

RN50TUI_PYTHON="${RN50TUI_PYTHON:-python3}"

rn50tui_cmd() {
    if command -v rn50tui >/dev/null 2>&1; then
        rn50tui "$@"
    else
        "$RN50TUI_PYTHON" -m rn50tui "$@"
    fi
}

require_dataset() {
    if [ -z "${IMAGENET_TRAIN_DATASET:-}" ]; then
        echo "error: IMAGENET_TRAIN_DATASET is not set: export it (see run_scripts/env.sh) to the ImageNet root with train/ and val/" >&2
        exit 2
    fi
    if [ ! -d "$IMAGENET_TRAIN_DATASET" ]; then
        echo "error: IMAGENET_TRAIN_DATASET=$IMAGENET_TRAIN_DATASET is not a directory" >&2
        exit 2
    fi
}

job_status() {
    rn50tui_cmd jobs show "$1" --json | "$RN50TUI_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["status"])'
}

# submit_and_follow SUBMIT_ARGS... -- ENGINE_FLAGS...: queue the job, print its id, follow its log,
# and exit 0 only when it completed. Ctrl-C stops following, never the job.
submit_and_follow() {
    local job submit=() engine=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do submit+=("$1"); shift; done
    [ $# -gt 0 ] && shift  # the --
    engine=("$@")
    # shellcheck disable=SC2086  # the *_FLAGS variables are word lists on purpose
    job=$(rn50tui_cmd submit ${RN50TUI_SUBMIT_FLAGS:-} "${submit[@]}" -- "${engine[@]}" ${RN50TUI_ENGINE_FLAGS:-}) || exit $?
    echo "job $job queued (rn50tui jobs show $job; rn50tui cancel $job)"
    if [ "${RN50TUI_NO_FOLLOW:-0}" = "1" ]; then
        return 0
    fi
    trap 'echo; echo "stopped following: job $job keeps running (rn50tui logs -f $job to follow again, rn50tui cancel $job to stop it)"; exit 130' INT
    rn50tui_cmd logs -f "$job"
    trap - INT
    local status
    status=$(job_status "$job")
    echo "job $job $status"
    [ "$status" = "completed" ]
}

# train_preset PRESET [WORKSPACE]: the training scripts' one line: the ImageNet dataset, that preset,
# checkpoints and raport.json in WORKSPACE (default ./), the log followed.
train_preset() {
    require_dataset
    submit_and_follow --preset "$1" --data "$IMAGENET_TRAIN_DATASET" -- --workspace "${2:-./}"
}
