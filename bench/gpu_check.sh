#!/usr/bin/env bash
# One prepared GPU check (run through the device tool; see README "GPU numbers"). A few minutes:
#  1. the CUDA training path end to end (bf16 autocast + channels_last, resume), via the CLI;
#  2. the same through torchrun with NCCL (one process: the multi-GPU code path);
#  3. bench_translate.py on CUDA: training s/iter per variant, bare forward, generation end to end of
#     a few thousand images (the 400 sample images repeated, stated in the output).
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
echo "done"
