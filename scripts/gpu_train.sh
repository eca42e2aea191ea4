#!/usr/bin/env bash
# Train `srn` and the CPU preset `nafnet-cpu` on a GPU machine in one command, end to end, and bring back what
# they made.
#
#   OUT=/path/to/results MINUTES=8 SHARE=0.5 scripts/gpu_train.sh
#
# Both train on the broad synthesis (docs/training.md's "Blur synthesis"): each sample is drawn from the
# realistic recipes (long curved motion and pans, shake, non-uniform blur) or from the mix kinds (gaussian,
# motion, shake, video), half each, with noise and saturated highlights. Runs on realistic alone lost
# srn 0.4-1.5 dB on gaussian and video against its shipped weights; the mix half keeps those kinds in view.
# A share $SHARP of the samples stays sharp or only lightly blurred (--sharp-share), so the networks learn
# to leave sharp frames as they are. No JPEG ($JPEG, 0): the CPU fine-tune that made the shipped nafnet-cpu
# found that JPEG on those sharp and lightly blurred samples teaches a network to smooth compression away,
# which blurs clean, slightly blurred photos (36.42 dB against the input's 36.75; 36.91 once JPEG was dropped,
# training/nafnet-cpu-noharm); and the JPEG codec is the one part of making a batch that takes the crops off
# the GPU and back.
#
# The training step (docs/gpu-training.md, "The training step on a GPU"): bf16 autocast, channels_last, fused
# AdamW, and for the models in $COMPILE, torch.compile with its passes replayed as CUDA graphs
# (--compile; mode reduce-overhead, chosen by deblur_core.train on one GPU). nafnet-cpu's step ran at 2.1% of
# the H200's bf16 peak, its hundreds of small kernels waiting on their launches: graphs launch them at once.
# srn's ran at 16% (its convolutions are wider), so it trains eagerly and spends no smoke minute compiling.
# Compiling costs about a minute in the smoke phase's first call; its later calls and the training run load
# the kernels from torch's cache on this machine. A model whose compiled smoke phase fails runs it again
# without --compile and trains that way.
# Batch 32 and lr 1e-3 (AdamW, 300 warm-up steps, cosine) stay those of the windows whose nafnet-cpu stages
# ship: with the step no longer launch-bound, a larger batch would raise crops/s little (making a batch bounds
# it at any batch size: 1,424 realistic and 2,288 mix crops/s on the H200 at batch 32, with JPEG) while halving
# the optimizer steps of a few-minute fine-tune, and would want a larger learning rate (about sqrt(2) x for
# AdamW at twice the batch) that weights already trained do not need.
#
# Each model starts from the better of its shipped weights and its progress committed under training/:
#   srn:        the shipped weights, the CPU fine-tune that leaves sharp frames alone (training/srn-noharm:
#               43.98 dB on unblurred photos, every blur kind within 0.11 dB of the GPU weights before it).
#               training/srn-realistic (those GPU weights after two windows on the realistic synthesis)
#               gained on long and non-uniform blur but lost up to 1.5 dB on gaussian and video;
#   nafnet-cpu: the shipped weights, the fine-tune that leaves sharp frames alone (43.55 dB on unblurred
#               photos against 35.9 for training/nafnet-cpu's stage 8, every blur kind within 0.1 dB of it).
# INIT_SRN and INIT_NAFNET_CPU override (a path or "shipped"; "" starts fresh). SHARE of $MINUTES goes to
# the first of $MODELS, the rest to the others in equal parts.
#
# Phases, each logged with a timestamp to $OUT/log.txt:
#   1. install offline what the machine lacks: wheels carried in .whl/ (kornia, kornia-rs), then this
#      project with `pip install --no-deps --no-build-isolation -e .` (no registry is reachable there);
#   2. smoke (about a minute a model, its compiling included): a few steps at full size under the training
#      precision, a resume, and a checkpoint round trip; a model that fails any of it (and, compiled, fails
#      it again without --compile) is left out and its minutes go to the others, and the script stops here,
#      before the long phases, only when every model failed;
#   3. training, model after model: the step count is sized from the smoke phase's measured steps/s so that
#      the cosine schedule ends inside the model's minutes, and --decay-by-time decays it over --max-minutes
#      too (both H200 windows trained at half the smoke phase's rate, and stopped half-way down); the best
#      weights are copied to $OUT at every checkpoint, so a run cut short still brings something back, and
#      a run that fails midway does not stop the next model's;
#   4. the GPU benchmark profile ($BENCH_CMD; skipped when empty; its failure does not lose the weights);
#   5. packing: fp16 weights and results.tar.gz, so that at most 8 files of at most 16 MiB come back.
#
# Every size is a variable, so tests rehearse this same script on a CPU at toy size (tests/test_gpu_script.py).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:?set OUT to the results folder}
DATA=${DATA:-data/photos}             # built by: python scripts/build_photos.py --out data/photos
MODELS=${MODELS:-srn nafnet-cpu}
MINUTES=${MINUTES:-4.7}               # training wall time, all models together
SHARE=${SHARE:-0.5}                   # share of $MINUTES for the first model
BLUR=${BLUR:-broad}
SHARP=${SHARP:-0.1}                   # share of samples left sharp or lightly blurred (--sharp-share)
JPEG=${JPEG:-0.0}                     # share of samples saved as JPEG (--jpeg); see above for why none
COMPILE=${COMPILE-nafnet-cpu}         # models trained with --compile (CUDA graphs on the GPU); "" for none
PATCH=${PATCH:-256}
BATCH=${BATCH:-32}
LR=${LR:-1e-3}
WARMUP=${WARMUP:-300}
SMOKE_STEPS=${SMOKE_STEPS:-120}         # half in a first call, half resumed; steps/s from the last quarter
VAL_EVERY=${VAL_EVERY:-1000}
VAL_COUNT=${VAL_COUNT:-64}
VAL_PATCH=${VAL_PATCH:-256}
DEVICE=${DEVICE:-auto}
INIT_SRN=${INIT_SRN-shipped}          # a path or "shipped"; "" starts fresh
INIT_NAFNET_CPU=${INIT_NAFNET_CPU-shipped}
RUNS=${RUNS:-runs}                    # run folders: $RUNS/gpu-<model>
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
read -r -a MODEL_LIST <<< "$MODELS"
init_for() { case "$1" in srn) echo "$INIT_SRN" ;; nafnet-cpu) echo "$INIT_NAFNET_CPU" ;; *) echo "" ;; esac; }
EAGER=()  # models of $COMPILE whose compiled smoke phase failed: they train without --compile
compiled() { [[ " $COMPILE " == *" $1 "* && " ${EAGER[*]-} " != *" $1 "* ]]; }
minutes_for() {  # $1: the model's index in $MODELS
    $PY -c "import sys; i, n, m, s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]); \
print(m if n == 1 else m * s if i == 0 else m * (1 - s) / (n - 1))" "$1" "${#MODEL_LIST[@]}" "$MINUTES" "$SHARE"
}
train_args() {  # $1: the model
    local init
    init=$(init_for "$1")
    TRAIN_ARGS=(--model "$1" --data "folder:$DATA" --blur "$BLUR" --sharp-share "$SHARP" --batch-size "$BATCH"
                --patch "$PATCH" --lr "$LR" --warmup "$WARMUP" --loss l1 --fft-loss 0.1 --optimizer adamw
                --weight-decay 1e-4 --noise 0.01 --saturate 0.1 --jpeg "$JPEG" --rotate --val-count "$VAL_COUNT"
                --val-patch "$VAL_PATCH" --device "$DEVICE" --decay-by-time --quiet)
    [ -n "$init" ] && TRAIN_ARGS+=(--init "$init")
    compiled "$1" && TRAIN_ARGS+=(--compile)
    return 0
}

# ---- 2. smoke -----------------------------------------------------------------------------------------
# A model whose smoke phase fails is left out (logged) and its minutes go to the others: a GPU window is
# short and rarely repeated, so one model's error must not cost the others their training. The script stops
# here only when every model failed.
smoke() {  # $1: the model; non-zero at the first failing step (errexit does not apply inside `if`)
local MODEL=$1 SMOKE half
train_args "$MODEL"
SMOKE="$RUNS/gpu-$MODEL-smoke"
rm -rf "$SMOKE"
half=$((SMOKE_STEPS / 2))
run "${CLI[@]}" train "${TRAIN_ARGS[@]}" --steps "$half" --val-every "$half" --val-count 8 --log-every 5 \
    --out "$SMOKE" || return 1
run "${CLI[@]}" train --resume "$SMOKE" --steps "$SMOKE_STEPS" --quiet || return 1
run $PY - "$SMOKE" "$OUT/smoke-$MODEL.json" <<'EOF' || return 1
import json, sys, torch
from pathlib import Path
from deblur_core.checkpoint import load_model, save_checkpoint
run, dest = Path(sys.argv[1]), Path(sys.argv[2])
rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
steps = [r["step"] for r in rows]
total = json.loads((run / "config.json").read_text())["steps"]
assert steps == sorted(steps) and steps[-1] == total, steps
# the round trip: weights saved in fp16 come back as the same network
model, meta = load_model(run / "last.safetensors")
save_checkpoint(run / "rt.safetensors", model, name=meta["model"], kwargs=meta["kwargs"], dtype=torch.float16)
again, _ = load_model(run / "rt.safetensors")
x = torch.rand(1, 3, 64, 64)
with torch.no_grad():
    diff = (model.eval()(x) - again.eval()(x)).abs().max().item()
assert diff < 1e-2, diff
# steps/s over the resumed call's second half: past cuDNN autotuning, worker start-up and the plans the
# workers drew ahead while the model loaded (24). The first GPU window timed 5 steps just after the resume
# and sized its runs from 8.5 and 15.2 steps/s where they then trained at 5.6 and 7.3, so both ran into
# --max-minutes before their learning rate had decayed.
timed = [r for r in rows if r["step"] >= (3 * total) // 4 and "val_psnr" not in r]
if len(timed) >= 2:
    rate = (timed[-1]["step"] - timed[0]["step"]) / max(1e-6, timed[-1]["elapsed_s"] - timed[0]["elapsed_s"])
else:  # too few steps logged (a toy rehearsal): the resumed call's whole rate, validation included
    half = [r for r in rows if "val_psnr" in r][0]
    rate = (rows[-1]["step"] - half["step"]) / max(1e-6, rows[-1]["elapsed_s"] - half["elapsed_s"])
info = {"steps_per_s": rate, "val_psnr": rows[-1].get("val_psnr"), "fp16_roundtrip_max_diff": diff,
        "compile": json.loads((run / "config.json").read_text())["compile"],
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
dest.write_text(json.dumps(info, indent=2))
print(json.dumps(info))
EOF
}
PASSED=()
SMOKE_START=$SECONDS
for MODEL in "${MODEL_LIST[@]}"; do
    log "phase 2: smoke ($MODEL)"
    if smoke "$MODEL"; then
        PASSED+=("$MODEL")
    elif compiled "$MODEL"; then
        # a compiler error must not cost the model its window: the eager step trained both earlier windows
        log "compiled smoke failed for $MODEL: once more without --compile"
        EAGER+=("$MODEL")
        if smoke "$MODEL"; then PASSED+=("$MODEL"); else log "smoke failed for $MODEL: left out"; fi
    else
        log "smoke failed for $MODEL: left out"
    fi
done
log "smoke phases took $((SECONDS - SMOKE_START)) s"
[ ${#PASSED[@]} -gt 0 ] || { log "every smoke phase failed: stopping"; exit 1; }
MODEL_LIST=("${PASSED[@]}")

# ---- 3. training --------------------------------------------------------------------------------------
# copies of the newest best weights and curve of $MODEL's $RUN in $OUT, should the call be cut before packing
keep_newest() {
    if [ -f "$RUN/best.safetensors" ]; then
        cp "$RUN/best.safetensors" "$OUT/$MODEL-best.safetensors.part"
        mv "$OUT/$MODEL-best.safetensors.part" "$OUT/$MODEL-best.safetensors"
    fi
    if [ -f "$RUN/metrics.jsonl" ]; then cp "$RUN/metrics.jsonl" "$OUT/$MODEL-metrics.jsonl"; fi
}
for i in "${!MODEL_LIST[@]}"; do
MODEL=${MODEL_LIST[$i]}
RUN="$RUNS/gpu-$MODEL"
MIN=$(minutes_for "$i")
train_args "$MODEL"
log "phase 3: train $MODEL for $MIN minutes"
STEPS=$($PY -c "import json,sys; r=json.load(open(sys.argv[1]))['steps_per_s']; print(max(10, int(r*$MIN*60*0.93)))" "$OUT/smoke-$MODEL.json")
log "sized to $STEPS steps"
rm -rf "$RUN"
( while sleep 20; do keep_newest; done ) &
WATCH=$!
trap 'kill $WATCH 2>/dev/null || true' EXIT
MAXMIN=$($PY -c "print($MIN + 0.5)")
# an error mid-run (out of memory, say) keeps what the run saved and goes on to the next model
run "${CLI[@]}" train "${TRAIN_ARGS[@]}" --steps "$STEPS" --val-every "$VAL_EVERY" --max-minutes "$MAXMIN" \
    --out "$RUN" || log "training $MODEL stopped with an error: its saved checkpoints are kept"
kill $WATCH 2>/dev/null || true
# once more after the run: the H200 window lost srn's last best weights, saved between two of the watcher's
# ticks, when its call was cut before packing
keep_newest
done

# ---- 4. benchmarks ------------------------------------------------------------------------------------
if [ -n "$BENCH_CMD" ]; then
    log "phase 4: benchmarks"
    mkdir -p "$OUT/bench"
    BENCH_OUT="$OUT/bench" bash -c "$BENCH_CMD" 2>&1 | tee -a "$LOG" || log "benchmarks failed (the weights are kept)"
fi

# ---- 5. pack ------------------------------------------------------------------------------------------
log "phase 5: pack"
PACK=()
for MODEL in "${MODEL_LIST[@]}"; do
RUN="$RUNS/gpu-$MODEL"
if [ ! -f "$RUN/best.safetensors" ]; then log "no checkpoint for $MODEL: nothing to pack"; continue; fi
run $PY - "$RUN" "$OUT" "$MODEL" <<'EOF' \
    || { log "packing $MODEL failed: its newest best weights stay in \$OUT"; continue; }
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
rm -f "$OUT/$MODEL-best.safetensors" "$OUT/$MODEL-metrics.jsonl"
cp "$RUN/config.json" "$OUT/$MODEL-config.json"
cp "$RUN/metrics.jsonl" "$OUT/$MODEL-metrics.jsonl"
[ -f "$RUN/curve.png" ] && cp "$RUN/curve.png" "$OUT/$MODEL-curve.png"
PACK+=("$MODEL-config.json" "$MODEL-metrics.jsonl" "smoke-$MODEL.json")
[ -f "$OUT/$MODEL-curve.png" ] && PACK+=("$MODEL-curve.png")
done
[ -d "$OUT/bench" ] && PACK+=(bench)
[ ${#PACK[@]} -gt 0 ] && (cd "$OUT" && tar -czf results.tar.gz --remove-files "${PACK[@]}")
log "done"
ls -la "$OUT" | tee -a "$LOG"
