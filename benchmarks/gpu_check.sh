#!/usr/bin/env bash
# The GPU check of benchmarks/RESULTS.md, in one go: at most about 6 minutes (the sum of the
# time limits below, plus the install), about 3 expected, on one H200.
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine, from anywhere
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh   # the same commands, tiny, on a CPU (a dry run)
#
# Writes every table as JSON + markdown, each command's log, nvidia-smi and a summary into
# $OUT (default benchmarks/results/gpu). Each command has its own time limit and a failure does
# not stop the others; the summary lists the exit status of each.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works even if the install below cannot run

# The machine is offline: try without build isolation first (no download of setuptools).
pip install -e . -q --no-build-isolation --no-deps 2>"$OUT/pip.log" || pip install -e . -q 2>>"$OUT/pip.log" \
    || echo "pip install failed (see pip.log); running from the checkout" | tee -a "$OUT/summary.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" \
    | tee -a "$OUT/summary.txt"
command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1

if [ "$QUICK" = 1 ]; then
    EXTRA="--threads 1"  # tiny tensors on a possibly shared CPU
    MEMORY="--archs resnet32 --batch-size 2 --image-size 8"
    TRAIN="--arch resnet20 --modules 2 4 --batch-size 2 --image-size 8 --steps 1 --warmup 1"
    TRAIN_SMALL="--arch resnet20 --modules 2 --contexts E --batch-size 2 --image-size 8 --steps 1 --warmup 1"
    KSG="--n 500 --repeats 1"
    ANALYSIS="--quick"
else
    EXTRA=""
    MEMORY=""                                           # batch 128, all 12 configurations
    TRAIN="--steps 20 --warmup 5"                       # batch 128, E2E + R0/E at K=2,4,8,16
    TRAIN_SMALL="--modules 16 --contexts E --steps 20 --warmup 5"  # compiling is slow: E2E and E K=16
    KSG="--repeats 5"                                   # n=10,000, k=5, 5+5 dims
    ANALYSIS=""                                         # ResNet-32 K=16 E, n=5,000
fi

run() {  # run NAME SECONDS ARGS...: one benchmark with a time limit, logged
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" python3 -m mi_analysis.cli bench "$@" --device "$DEVICE" --out "$OUT" $EXTRA > "$OUT/$name.log" 2>&1
    local status=$?
    echo "$name: exit $status after $((SECONDS - start)) s (limit $limit s): bench $*" | tee -a "$OUT/summary.txt"
}

run memory            45 memory $MEMORY
run train             45 train $TRAIN --profile --parts
run train-bf16        35 train $TRAIN --bf16
run train-cl          35 train $TRAIN --channels-last
run train-compile    110 train $TRAIN_SMALL --compile
run ksg               20 ksg $KSG
run analysis          40 analysis $ANALYSIS
echo "done: tables, logs and summary.txt in $OUT" | tee -a "$OUT/summary.txt"
