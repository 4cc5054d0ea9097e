#!/usr/bin/env bash
# Evaluate a checkpoint on the ImageNet validation set, one card, FP32, as the seed's infer script did.
#   bash run_scripts/NGC_ResNet50v15_Infer.sh [CHECKPOINT] [WORKSPACE]
# CHECKPOINT defaults to ./checkpoint.pth.tar. No "--epochs checkpoint+1" arithmetic is needed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
require_dataset
checkpoint="${1:-./checkpoint.pth.tar}"
if [ ! -f "$checkpoint" ]; then
    echo "error: checkpoint $checkpoint does not exist: pass its path as the first argument" >&2
    exit 2
fi
workspace="${2:-./infer}"
submit_and_follow --preset ngc-infer --data "$IMAGENET_TRAIN_DATASET" --checkpoint "$checkpoint" -- --workspace "$workspace"
