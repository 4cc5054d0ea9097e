#!/usr/bin/env bash
# Source this file (as in the seed): `source run_scripts/env.sh`, after setting the path below.
# IMAGENET_TRAIN_DATASET: the ImageNet 2012 root inside the container, with train/ and val/
# (class folders), and optionally train.txt / val.txt lists.
export IMAGENET_TRAIN_DATASET="${IMAGENET_TRAIN_DATASET:-/data/imagenet}"
# Where rn50tui keeps its job store; every rn50tui command and the TUI read the same file.
export RN50TUI_DB="${RN50TUI_DB:-$PWD/jobs.db}"
# MLU_VISIBLE_DEVICES is set per job by rn50tui from the cards it grants: do not export it here.
