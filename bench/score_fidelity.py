"""Score folders of held-out translations against the work folder they were made from: one JSON row
per folder, with the same columns for every run, appended to ``--out`` (JSON lines), so an ablation
table can be built from the rows.

A folder holds PNG files and ``sources.json`` (``{"file.png": "record_id", ...}`` or a list of
``{"file", "record_id"}``; see :func:`cxrsynth.stages.audit.fidelity.read_translations`), e.g.
``runs/ablation/<variant>/heldout``. The run is named after the folder (``heldout`` folders after their
parent), or ``--name``.

    python bench/score_fidelity.py --workdir runs/ablation/wd --out bench/results/ablation/fidelity.jsonl \\
        runs/ablation/*/heldout

The work folder's chest X-ray encoder is trained on first use and cached there; every row carries its
sha256 (rows compare only when it is the same). ``--set KEY=VALUE`` overrides :class:`FidelityConfig`
(n_max, repeats, probe_bootstrap, encoder_epochs, seed). ``--section DIR`` also writes each run's full
fidelity section (``<run>.json``) and its spectrum figure there. ``--external NAME=DIR``: real COVID-19
of another collection, the "another hospital" baseline (its columns: ``probe_real_vs_external_auroc``, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cxrsynth.artifacts import SplitData
from cxrsynth.core.layout import WorkLayout
from cxrsynth.stages.audit import fidelity as F
from cxrsynth.stages.external_sets import parse_externals
from cxrsynth.core.config import resolve
from cxrsynth.core.errors import CxrsynthError
from cxrsynth.core.paths import atomic_write, write_json


def run_name(folder: Path) -> str:
    return folder.parent.name if folder.name == "heldout" else folder.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path, help="JSON lines file; one row per folder is appended")
    ap.add_argument("--name", help="run name (one folder only)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--section", type=Path, help="also write each run's full section and spectrum figure here")
    ap.add_argument("--external", action="append", default=[], metavar="NAME=DIR",
                    help="real COVID-19 of another collection: a third baseline (repeatable)")
    a = ap.parse_args(argv)
    try:
        cfg = resolve(F.FidelityConfig, overrides=a.set)
        layout = WorkLayout(a.workdir)
        data = SplitData.read(layout.root)  # the work folder is read here, once; the fidelity module opens none
        models = layout.benchmark_files.models("real", 0)  # the work folder's benchmark classifier, when there is one
        spaces = F.feature_spaces(data, models[0] if models else None, encoder_epochs=cfg.encoder_epochs, seed=cfg.seed,
                                  encoder_cache=layout.cxr_encoder)
        externals, external = parse_externals(a.external), {}  # decoded once per size
        for folder in a.folders:
            t = time.perf_counter()
            name = a.name if a.name and len(a.folders) == 1 else run_name(folder)
            syn, ids, _ = F.read_translations(folder)
            size = syn.shape[-1]
            if externals and size not in external:
                external[size] = F.external_real(data, externals, size)
            section = F.score(data, syn, ids, cfg=cfg, spaces=spaces, external=external.get(size))
            row = F.row(section, name) | {"seconds": round(time.perf_counter() - t, 1)}
            old = a.out.read_text() if a.out.is_file() else ""
            with atomic_write(a.out) as fh:
                fh.write(old + json.dumps(row) + "\n")
            if a.section:
                write_json(a.section / f"{name}.json", section)
                F.spectrum_figure(section, a.section / f"{name}-spectrum.png")
            print(f"{name}: {F.sentence(section)}")
    except CxrsynthError as exc:
        print(f"Error: {exc.one_line()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
