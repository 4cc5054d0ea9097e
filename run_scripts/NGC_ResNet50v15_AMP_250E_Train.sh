#!/usr/bin/env bash
# NGC ResNet-50 v1.5, 250 epochs, AMP, mixup 0.2: upstream's DGX-A100 recipe (8 cards) as an rn50tui job.
#   bash run_scripts/NGC_ResNet50v15_AMP_250E_Train.sh [WORKSPACE]
# 256 images per card, global batch 2048: on 4 cards (RN50TUI_SUBMIT_FLAGS="--cards 4") each optimizer
# step accumulates 2 mini-batches, so the recipe is the same. Validation runs every epoch.
# The job shows in the TUI (rn50tui); Ctrl-C here stops following the log, not the job.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
train_preset ngc-amp-250e "$@"
