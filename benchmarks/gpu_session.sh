#!/usr/bin/env bash
# One GPU machine session for issue 22 (benchmarks 11 and 12), bounded by BUDGET_S seconds:
# the hard corpus is synthesised there (same seed, same files), the full-size recipe trains on
# the GPU (bench_gpu_recipe.py) while CPU runs of the convergence study share out the cores,
# 2 per run, with the epochs that this repository's measured epoch_seconds.json budgets
# (bench_convergence.py launch). Results, never checkpoints, are copied to $OUT.
#
#   BUDGET_S=540 OUT=/tmp/out bash benchmarks/gpu_session.sh
set -u
START=$SECONDS
BUDGET_S=${BUDGET_S:-540}
OUT=${OUT:?set OUT to the folder results go to}
WORK=${WORK:-/tmp/gpu_session}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$WORK" "$OUT"
left() { echo $((BUDGET_S - (SECONDS - START))); }

if ! $PY -c "import speechbrain, pytorch_metric_learning, soundfile" 2>/dev/null && [ -d .whl ]; then
    # the device image lacks SpeechBrain and friends: wheels carried along
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl 2>&1 | tail -2
    export PYTHONPATH=$PWD/src:/tmp/site
fi
{ nproc; lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-400; nvidia-smi || true; } \
    > "$OUT/machine.txt" 2>&1
$PY -m cryprint synth --dest "$WORK/hard" --babies "${BABIES:-786}" --difficulty 1.5 > "$OUT/synth.log" 2>&1
echo "synth done at $((SECONDS - START)) s" | tee -a "$OUT/timeline.txt"

cores=$(nproc)
# The CPU runs: 2 cores each, all but what the GPU job's process needs.
slots=$(( (cores - ${GPU_CORES:-0}) / 2 ))
[ -z "${CPU_JOBS:-}" ] || (cd benchmarks && timeout -s KILL "$(left)" $PY bench_convergence.py launch \
    --data "$WORK/hard" --out "$WORK/conv" --epoch-seconds convergence/epoch_seconds_hard.json \
    --parallel "$slots" --threads 2 --jobs ${CPU_JOBS}) > "$OUT/conv.log" 2>&1 &
CPU=$!
OVERRIDE=${GPU_OVERRIDE:-}
[ -n "$OVERRIDE" ] || OVERRIDE='{}'
if [ "$DEVICE" != none ]; then
    (cd benchmarks && $PY bench_gpu_recipe.py --data "$WORK/hard" --out "$WORK/gpu" \
        --device "$DEVICE" --deadline-seconds "$(( $(left) - 40 ))" \
        --override "$OVERRIDE" ${GPU_ARGS:-}) > "$OUT/gpu.log" 2>&1
    echo "gpu done at $((SECONDS - START)) s" | tee -a "$OUT/timeline.txt"
fi
while kill -0 $CPU 2>/dev/null && [ "$(left)" -gt 25 ]; do sleep 5; done
pkill -KILL -f "bench_convergence.py" ; pkill -KILL -f "cryprint train"; pkill -KILL -f "cryprint evaluate"
echo "cpu done at $((SECONDS - START)) s" | tee -a "$OUT/timeline.txt"
(cd "$WORK" && find conv gpu \( -name '*.json' -o -name '*.csv' -o -name '*.log' -o -name '*.yaml' \) \
    -not -path '*/checkpoints/*' -print0 2>/dev/null | tar --null -czf "$OUT/results.tgz" -T -)
ls -la "$OUT"
