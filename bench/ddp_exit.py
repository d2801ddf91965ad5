"""How often a two-process gloo DDP run aborts as it exits, with and without collecting the DDP model first.

    python bench/ddp_exit.py [RUNS]     # each mode RUNS times (default 15), two CPU processes by torchrun

Why: a suite run (2026-12-06, AMD EPYC Zen 5) failed once in the README's sbatch + torchrun test with
"terminate called without an active exception" (SIGABRT) in rank 1 after training had finished. The same
3-step DDP script is run here in three modes, as a training process ends:

- ``keep``: exit with the DDP model alive (as train did before);
- ``collected``: the model deleted and ``gc.collect()`` run before exit (``Runtime``'s exit handler collects);
- ``collected+destroy``: then ``destroy_process_group()`` too (``Runtime.start_distributed`` registers it
  at exit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import gc, sys, torch, torch.distributed as dist
dist.init_process_group("gloo")
m = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(64, 64))
for _ in range(3):
    m(torch.randn(8, 64)).sum().backward()
dist.barrier()
if sys.argv[1] != "keep":
    del m
    gc.collect()
if sys.argv[1] == "collected+destroy":
    dist.destroy_process_group()
"""


def main(runs: int = 15) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ddp_child.py"
        script.write_text(CHILD)
        for mode in ("keep", "collected", "collected+destroy"):
            failed = 0
            for _ in range(runs):
                res = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", str(script), mode],
                                     capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
                failed += res.returncode != 0
            print(f"{mode}: {failed} of {runs} runs aborted", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
