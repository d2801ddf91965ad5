"""What a command's process imports before it works (issue 23: the suite's time goes largely into processes).

`cxrsynth generate`, `release` and `audit` go through ``cxrsynth.pipeline``; it once imported the
benchmark stage (torchvision, scikit-learn, torch._dynamo: about 3 s of a 5 s start on the 2-core EPYC),
and training imported the marker filler (scipy.ndimage, skimage) for runs that never mask markers.
Each check runs in a fresh interpreter, so nothing this test session imported counts.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torchvision", "sklearn", "scipy.stats", "scipy.ndimage", "umap", "torch._dynamo")


def test_commands_import_only_what_they_use():
    """One fresh interpreter, two steps: what `cxrsynth train` imports (torch and the translator), then
    what `cxrsynth generate` / `release` / `audit` add before their first stage (scipy.ndimage: the
    audit's SSIM filter, 0.25 s). The benchmark stage itself does need the rest."""
    probe = (f"import sys, json\nseen = lambda: sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
             "from cxrsynth.stages.translate.train import train, resolve_train_config\nprint(json.dumps(seen()))\n"
             "import cxrsynth.cli\nfrom cxrsynth.pipeline import generate_in, audit_in, release\n"
             "print(json.dumps(seen()))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120)
    train_modules, pipeline_modules = (set(json.loads(line)) for line in out.stdout.strip().splitlines()[-2:])
    assert train_modules == set()
    assert pipeline_modules <= {"scipy.ndimage"}


def test_pipeline_benchmark_in_is_the_stage_s_own():
    import cxrsynth.pipeline as pipeline
    import cxrsynth.stages.benchmark.run as run

    assert pipeline.benchmark_in is run.benchmark_in
    with pytest.raises(AttributeError, match="no_such_stage"):
        pipeline.no_such_stage  # noqa: B018
