#!/usr/bin/env bash
# One prepared GPU check (run through the device tool; see README "GPU numbers"). A few minutes:
#  1. the CUDA training path end to end (bf16 autocast + channels_last, resume), via the CLI;
#  2. the same through torchrun with NCCL (one process: the multi-GPU code path);
#  3. bench_translate.py on CUDA: training s/iter per variant, bare forward, generation end to end of
#     a few thousand images (the 400 sample images repeated, stated in the output);
#  4. the `paper` preset: bench_paper_preset.py (update at batch 16, 128 and 256 px, beside the bf16 peak),
#     30 updates of the `paper`, `refined` and `refined-thumbnail` presets at 256 px through the CLI, then
#     both translators of $GPU_FULL_PRESETS (default: `paper` and `refined-thumbnail`, the recipe chosen in
#     issue 19) trained to completion at 256 px (700 updates) with their losses, grids and fp16 generators
#     collected into $OUT/PRESET-translators.tgz;
#  6. eager vs compiled (compile=on: torch.compile with CUDA graphs, mode reduce-overhead) side by side:
#     bench_speed.py (peaks, canonical step, the three presets' updates at batch 16, 128 and 256 px,
#     generation, classifier training; it records which mode won for compile=auto), then the
#     compiled step in the real loop via the CLI, resumed with compile off (checkpoints must not care).
# Expects wheels in .whl/ (what the device image lacks) and 256 px copies of the sample data in
# .device/data (made by bench/make_device_data.py).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD CXRSYNTH_SAMPLE_DATA=$PWD/.device/data HF_HUB_OFFLINE=1 TQDM_DISABLE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
CX="python3 -m cxrsynth.cli -w /tmp/wd"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
$CX ingest --workers 8 && $CX split && $CX plan --per-domain 180 | head -8
echo "== 1. train on CUDA (auto: bf16 + channels_last), 300 steps, then resume to 400"
$CX train --task normal-covid --device cuda --max-steps 300 --set save_every=100 --set sample_every=100 --json > "$OUT/train_cuda.json" && \
$CX train --task normal-covid --device cuda --max-steps 400 --set save_every=100 --set sample_every=100 --resume --json > "$OUT/train_cuda_resume.json"
tail -n 3 /tmp/wd/translators/normal-covid/losses.csv
cp /tmp/wd/translators/normal-covid/samples/step-00000400.png "$OUT/" 2>/dev/null
echo "== 2. torchrun + NCCL, 1 process"
python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m cxrsynth.cli -w /tmp/wd train --task pneumonia-covid \
  --device cuda --max-steps 50 --out /tmp/wd/ddp --json > "$OUT/train_ddp.json"; echo "torchrun rc=$?"
echo "== 3. generate with the trained translator (plan order)"
$CX generate --configs g_nc --set workers=4 --set encoders=4 --batch-size 32 --json > "$OUT/generate.json"; echo "generate rc=$?"
echo "== 4. bench"
python3 bench/bench_translate.py --device cuda --train-iters 20 --repeats 5 --batches 1 8 32 64 \
  --gen-images 3000 --replicate 10 --gen-workers 4 8 --encoders 6 --out "$OUT/bench_cuda.json"
echo "== 5. the presets' speed at 128 and 256 px, then both translators of ${GPU_FULL_PRESETS:=paper refined-thumbnail} to completion at 256 px"
python3 bench/bench_paper_preset.py --device cuda --iters 10 --out "$OUT/paper_preset_cuda.json"
for PRESET in paper refined refined-thumbnail; do  # the 256 px update of each preset, through the real loop
  /usr/bin/time -f "$PRESET 256 px, 30 updates: wall %e s" $CX train --task normal-covid --preset $PRESET --size 256 \
    --device cuda --max-steps 30 --set save_every=1000 --set sample_every=1000 --out /tmp/wd/speed-$PRESET-256 --json \
    > "$OUT/speed_${PRESET}_256.json"
done
for PRESET in $GPU_FULL_PRESETS; do
  for TASK in normal-covid pneumonia-covid; do
    /usr/bin/time -f "$PRESET $TASK wall %e s" $CX train --task $TASK --preset $PRESET --size 256 --device cuda \
      --out /tmp/wd/$PRESET/translators/$TASK --json > "$OUT/${PRESET}_$TASK.json"
  done
  python3 bench/collect_translators.py /tmp/wd/$PRESET bench/results/$PRESET-translators-256-cuda && \
    tar czf "$OUT/$PRESET-translators.tgz" bench/results/$PRESET-translators-256-cuda
done
echo "== 6. eager vs compiled steps (CUDA graphs)"
python3 bench/bench_speed.py --device cuda --reps 20 --gen-images 1000 --gen-batch 32 --classifier-images 512 \
  --presets paper refined refined-thumbnail --paper-sizes 128 256 --out-dir "$OUT"; echo "bench_speed rc=$?"
cp ~/.cache/cxrsynth/compile-speed.json "$OUT/" 2>/dev/null  # what compile=auto will pick on this GPU
/usr/bin/time -f "compiled train wall %e s" $CX train --task normal-covid --device cuda --max-steps 300 --set compile=on \
  --set save_every=100 --set sample_every=100 --out /tmp/wd/compiled --json > "$OUT/train_cuda_compiled.json" && \
$CX train --task normal-covid --device cuda --max-steps 350 --set compile=off --out /tmp/wd/compiled --resume --json \
  > "$OUT/train_cuda_compiled_resumed.json"; echo "compiled train + eager resume rc=$?"
echo "done"
