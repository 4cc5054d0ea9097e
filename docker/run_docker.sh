#!/usr/bin/env bash
# Start an rn50tui container with the devices and volumes the seed's run_docker.sh used.
#   DATASET=/data/imagenet WORKSPACE=$PWD/workspace bash docker/run_docker.sh [mlu|cuda|cpu] [command...]
# MLU: the Cambricon control device and every /dev/cambricon_dev*, the host's cnmon binary, --ipc=host.
set -euo pipefail

kind="${1:-mlu}"
shift || true
image="${IMAGE:-rn50tui:${kind}}"
dataset="${DATASET:?set DATASET to the host directory holding ImageNet (train/ and val/)}"
workspace="${WORKSPACE:-$PWD/workspace}"
name="${NAME:-rn50tui_${kind}}"

if [ ! -d "$dataset" ]; then
    echo "error: DATASET=$dataset is not a directory" >&2
    exit 2
fi
mkdir -p "$workspace"

args=(-it --rm --name "$name" --ipc=host --shm-size="${SHM_SIZE:-16g}" --network=host
      -v "$dataset:$dataset:ro" -v "$workspace:/workspace"
      -e "IMAGENET_TRAIN_DATASET=$dataset")

case "$kind" in
    mlu)
        args+=(--device /dev/cambricon_ctl)
        for dev in /dev/cambricon_dev* /dev/cambricon_ipcm*; do
            [ -e "$dev" ] && args+=(--device "$dev")
        done
        cnmon_bin="$(command -v cnmon || echo /usr/bin/cnmon)"
        [ -x "$cnmon_bin" ] && args+=(-v "$cnmon_bin:/usr/bin/cnmon:ro")
        # the seed ran privileged; set PRIVILEGED=0 to try without once your devices are listed above
        [ "${PRIVILEGED:-1}" = "1" ] && args+=(--privileged)
        ;;
    cuda)
        args+=(--gpus all)
        ;;
    cpu)
        ;;
    *)
        echo "error: unknown kind '$kind': use mlu, cuda or cpu" >&2
        exit 2
        ;;
esac

exec docker run "${args[@]}" "$image" "$@"
