#!/usr/bin/env bash
# The smoke test of an installation: the demo job (synthetic data, one CPU, about two minutes).
#   bash run_scripts/CPU_Demo.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
submit_and_follow --preset demo
