#!/usr/bin/env bash
# Train `srn` on a GPU machine in one command, end to end, and bring back what it made.
#
#   OUT=/path/to/results scripts/gpu_train.sh
#
# Phases, each logged with a timestamp to $OUT/log.txt:
#   1. install offline what the machine lacks: wheels carried in .whl/ (kornia, kornia-rs), then this
#      project with `pip install --no-deps --no-build-isolation -e .` (no registry is reachable there);
#   2. smoke (about a minute): a few steps at full size under the training precision, a resume, and a
#      checkpoint round trip; any error stops the script here, before the long phases;
#   3. training: the step count is sized from the smoke phase's measured steps/s so that the cosine
#      schedule ends inside $MINUTES (with --max-minutes as a backstop); the best weights are copied to
#      $OUT at every checkpoint, so a run cut short still brings something back;
#   4. the GPU benchmark profile ($BENCH_CMD; skipped when empty; its failure does not lose the weights);
#   5. packing: fp16 weights and results.tar.gz, so that at most 8 files of at most 16 MiB come back.
#
# Every size is a variable, so tests rehearse this same script on a CPU at toy size (tests/test_gpu_script.py).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:?set OUT to the results folder}
DATA=${DATA:-data/photos}             # built by: python scripts/build_photos.py --out data/photos
MODEL=${MODEL:-srn}
MINUTES=${MINUTES:-4.7}               # training wall time
PATCH=${PATCH:-256}
BATCH=${BATCH:-32}
LR=${LR:-1e-3}
WARMUP=${WARMUP:-300}
SMOKE_STEPS=${SMOKE_STEPS:-60}
VAL_EVERY=${VAL_EVERY:-1000}
VAL_COUNT=${VAL_COUNT:-64}
VAL_PATCH=${VAL_PATCH:-256}
DEVICE=${DEVICE:-auto}
INIT=${INIT:-}                        # e.g. "shipped": continue from the shipped weights
RUN=${RUN:-runs/gpu-$MODEL}
BENCH_CMD=${BENCH_CMD-}               # the GPU benchmark profile, run from the repository root
PY=${PY:-python3}
WHEELS=${WHEELS:-.whl}                # folder of carried wheels; a missing folder installs none

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/log.txt"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
run() { log "\$ $*"; "$@" 2>&1 | tee -a "$LOG"; }

# ---- 1. install ---------------------------------------------------------------------------------------
log "phase 1: install"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    run $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! $PY -c "import deblur_cli" 2>/dev/null; then
    run $PY -m pip install -q --no-deps --no-build-isolation -e . || {
        log "pip could not install the project: using its source trees"
        export PYTHONPATH=$PWD/packages/core/src:$PWD/packages/cli/src${PYTHONPATH:+:$PYTHONPATH}; }
fi
run $PY - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(), "bf16", torch.cuda.is_bf16_supported())
import deblur_core, kornia
print("deblur_core", deblur_core.__version__, "kornia", kornia.__version__)
EOF
CLI=("$PY" -m deblur_cli)
TRAIN_ARGS=(--model "$MODEL" --data "folder:$DATA" --blur mix --batch-size "$BATCH" --patch "$PATCH" --lr "$LR"
            --warmup "$WARMUP" --loss l1 --fft-loss 0.1 --optimizer adamw --weight-decay 1e-4 --noise 0.01
            --saturate 0.1 --rotate --val-count "$VAL_COUNT" --val-patch "$VAL_PATCH" --device "$DEVICE" --quiet)
[ -n "$INIT" ] && TRAIN_ARGS+=(--init "$INIT")

# ---- 2. smoke -----------------------------------------------------------------------------------------
log "phase 2: smoke"
SMOKE="$RUN-smoke"
rm -rf "$SMOKE"
half=$((SMOKE_STEPS / 2))
run "${CLI[@]}" train "${TRAIN_ARGS[@]}" --steps "$half" --val-every "$half" --val-count 8 --log-every 5 --out "$SMOKE"
run "${CLI[@]}" train --resume "$SMOKE" --steps "$SMOKE_STEPS" --quiet
run $PY - "$SMOKE" "$OUT/smoke.json" <<'EOF'
import json, sys, torch
from pathlib import Path
from deblur_core.checkpoint import load_model, save_checkpoint
run, dest = Path(sys.argv[1]), Path(sys.argv[2])
rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
steps = [r["step"] for r in rows]
assert steps == sorted(steps) and steps[-1] == json.loads((run / "config.json").read_text())["steps"], steps
# the round trip: weights saved in fp16 come back as the same network
model, meta = load_model(run / "last.safetensors")
save_checkpoint(run / "rt.safetensors", model, name=meta["model"], kwargs=meta["kwargs"], dtype=torch.float16)
again, _ = load_model(run / "rt.safetensors")
x = torch.rand(1, 3, 64, 64)
with torch.no_grad():
    diff = (model.eval()(x) - again.eval()(x)).abs().max().item()
assert diff < 1e-2, diff
# steps/s of the resumed call, past its first logged step (cuDNN autotuning, worker start-up)
timed = [r for r in rows if r["step"] > steps[len(steps) // 2] and "val_psnr" not in r]
if len(timed) >= 2:
    rate = (timed[-1]["step"] - timed[0]["step"]) / max(1e-6, timed[-1]["elapsed_s"] - timed[0]["elapsed_s"])
else:  # too few steps logged (a toy rehearsal): the resumed call's whole rate, validation included
    half = [r for r in rows if "val_psnr" in r][0]
    rate = (rows[-1]["step"] - half["step"]) / max(1e-6, rows[-1]["elapsed_s"] - half["elapsed_s"])
info = {"steps_per_s": rate, "val_psnr": rows[-1].get("val_psnr"), "fp16_roundtrip_max_diff": diff,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
dest.write_text(json.dumps(info, indent=2))
print(json.dumps(info))
EOF

# ---- 3. training --------------------------------------------------------------------------------------
log "phase 3: train for $MINUTES minutes"
STEPS=$($PY -c "import json,sys; r=json.load(open(sys.argv[1]))['steps_per_s']; print(max(10, int(r*$MINUTES*60*0.93)))" "$OUT/smoke.json")
log "sized to $STEPS steps"
rm -rf "$RUN"
( # keep copies of the newest results in $OUT while training runs
  while sleep 20; do
    [ -f "$RUN/best.safetensors" ] && cp "$RUN/best.safetensors" "$OUT/best.safetensors.part" && mv "$OUT/best.safetensors.part" "$OUT/best.safetensors"
    [ -f "$RUN/metrics.jsonl" ] && cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"
  done ) &
WATCH=$!
trap 'kill $WATCH 2>/dev/null || true' EXIT
MAXMIN=$($PY -c "print($MINUTES + 0.5)")
run "${CLI[@]}" train "${TRAIN_ARGS[@]}" --steps "$STEPS" --val-every "$VAL_EVERY" --max-minutes "$MAXMIN" --out "$RUN"
kill $WATCH 2>/dev/null || true
cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"

# ---- 4. benchmarks ------------------------------------------------------------------------------------
if [ -n "$BENCH_CMD" ]; then
    log "phase 4: benchmarks"
    mkdir -p "$OUT/bench"
    BENCH_OUT="$OUT/bench" bash -c "$BENCH_CMD" 2>&1 | tee -a "$LOG" || log "benchmarks failed (the weights are kept)"
fi

# ---- 5. pack ------------------------------------------------------------------------------------------
log "phase 5: pack"
run $PY - "$RUN" "$OUT" "$MODEL" <<'EOF'
import sys, torch
from pathlib import Path
from deblur_core.checkpoint import load_model, save_checkpoint
run, out, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for which in ("best", "last"):
    model, meta = load_model(run / f"{which}.safetensors")
    extra = {"init": meta["init"]} if meta.get("init") else None
    p = save_checkpoint(out / f"{name}-{which}-fp16.safetensors", model, name=meta["model"], kwargs=meta["kwargs"],
                        config=meta["config"], metrics=meta["metrics"], extra=extra, dtype=torch.float16)
    print(p, p.stat().st_size, meta["metrics"])
EOF
rm -f "$OUT/best.safetensors" "$OUT/metrics.jsonl"
cp "$RUN"/config.json "$RUN"/metrics.jsonl "$OUT"/
[ -f "$RUN/curve.png" ] && cp "$RUN/curve.png" "$OUT"/
(cd "$OUT" && tar -czf results.tar.gz --remove-files config.json metrics.jsonl smoke.json $(ls -d curve.png bench 2>/dev/null))
log "done"
ls -la "$OUT" | tee -a "$LOG"
