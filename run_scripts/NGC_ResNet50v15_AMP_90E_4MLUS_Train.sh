#!/usr/bin/env bash
# NGC ResNet-50 v1.5, 90 epochs, AMP, 4 cards: the seed's recipe as an rn50tui job.
#   bash run_scripts/NGC_ResNet50v15_AMP_90E_4MLUS_Train.sh [WORKSPACE]
# Validation runs every epoch (so model_best.pth.tar is kept); RN50TUI_ENGINE_FLAGS=--training-only turns it off.
# The job shows in the TUI (rn50tui); Ctrl-C here stops following the log, not the job.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
train_preset ngc-amp-90e "$@"
