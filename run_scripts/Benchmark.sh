#!/usr/bin/env bash
# Training and inference throughput of this machine's cards (the seed's test_benchmark.sh).
#   CARDS=4 BATCH_SIZE=256 BENCHMARK_LOG=bench.jsonl bash run_scripts/Benchmark.sh
# CARDS > 1 runs the training benchmark through torchrun; AMP=0 measures FP32.
set -euo pipefail
python="${RN50TUI_PYTHON:-python3}"
cards="${CARDS:-1}"
batch="${BATCH_SIZE:-256}"
iters="${ITERS:-100}"
size="${IMAGE_SIZE:-224}"
log="${BENCHMARK_LOG:-benchmark.jsonl}"
amp=()
[ "${AMP:-1}" = "1" ] && amp=(--amp)
train=(-m engine.bench train -b "$batch" --iters "$iters" --image-size "$size" --memory-format nhwc --log "$log" "${amp[@]}")
if [ "$cards" -gt 1 ]; then
    "$python" -m torch.distributed.run --nproc-per-node "$cards" "${train[@]}"
else
    "$python" "${train[@]}"
fi
"$python" -m engine.bench infer --batch-sizes "${INFER_BATCH_SIZES:-1,8,32,64,128,256}" --image-size "$size" \
    --memory-format nhwc --iters "${INFER_ITERS:-50}" --json "${log%.jsonl}-infer.jsonl"
echo "records appended to $log and ${log%.jsonl}-infer.jsonl"
