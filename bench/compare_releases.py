"""Two or more sample releases side by side (issue 19, part 4): fidelity from each ``audit.json``, and
every benchmark arm with its interval from each ``results.json``, as markdown tables.

    python bench/compare_releases.py paper=bench/results/sample-release refined=bench/results/sample-release-rse

Each NAME=FOLDER is a collected sample release (``bench/sample_release.sh``): the fidelity section is read
from ``FOLDER/audit-fidelity/audit.json`` when there is one, else ``FOLDER/audit/audit.json``; the benchmark
from ``FOLDER/benchmark/results.json``, with each external set's sensitivity where one was scored. NAME=FILE names an ``audit.json`` itself (fidelity only). Nothing is recomputed: the tables copy what the files say.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _audit(folder: Path) -> dict:
    if folder.is_file():  # an audit.json itself
        return json.loads(folder.read_text())["fidelity"]
    for sub in ("audit-fidelity", "audit"):
        p = folder / sub / "audit.json"
        if p.is_file() and "fidelity" in json.loads(p.read_text()):
            return json.loads(p.read_text())["fidelity"]
    raise SystemExit(f"{folder}: no audit.json with a fidelity section (audit-fidelity/ or audit/)")


def _kid(sec: dict, space: str) -> str:
    k = sec["kid"].get(space)
    if not k or "synthetic_vs_heldout" not in k:
        return "-"
    return (f"{k['synthetic_vs_heldout']['mean']:.3f} (untranslated {k['untranslated_vs_heldout']['mean']:.3f}, "
            f"floor {k['floor_train_vs_heldout']['mean']:.3f})")


def _probe(p: dict) -> str:
    lo, hi = p["auroc_ci95"]
    return f"{p['auroc']:.3f} [{lo:.3f}, {hi:.3f}]"


FIDELITY_ROWS = [
    ("images (synthetic / real COVID-19 train / held out)",
     lambda s: f"{s['n']['synthetic']} / {s['n']['real_covid_train']} / {s['n']['real_covid_heldout']}"),
    ("probe AUROC, real vs synthetic COVID-19", lambda s: _probe(s["probes"]["real_vs_synthetic"])),
    ("probe AUROC, real vs untranslated sources (baseline)", lambda s: _probe(s["probes"]["real_vs_untranslated"])),
    ("probe AUROC, two halves of real (floor)", lambda s: _probe(s["probes"]["real_halves"])),
    ("probe AUROC, held-out real vs synthetic (audits of 2026-12-06 on)", lambda s: _probe(s["probes"]["heldout_vs_synthetic"])),
    ("probe AUROC, held-out real vs untranslated", lambda s: _probe(s["probes"]["heldout_vs_untranslated"])),
    ("KID vs held-out real, pixels", lambda s: _kid(s, "pixels")),
    ("KID vs held-out real, chest X-ray encoder", lambda s: _kid(s, "cxr_encoder")),
    ("spectral distance vs held-out real", lambda s: (f"{s['spectrum']['synthetic_vs_heldout']:.3f} (untranslated "
                                                     f"{s['spectrum']['untranslated_vs_heldout']:.3f}, floor "
                                                     f"{s['spectrum']['floor_train_vs_heldout']:.3f})")),
    ("SSIM to own source, median", lambda s: f"{s['change']['ssim_to_source']['median']:.2f}"),
    ("pixel correlation with own source, median (inverted)",
     lambda s: (f"{s['change']['correlation_to_source']['median']:+.2f} "
                f"({100 * s['change']['correlation_to_source']['inverted_share']:.0f}%)"
                if "correlation_to_source" in s["change"] else "-")),
    ("probe AUROC, translated vs own source", lambda s: _probe(s["change"]["probe_translated_vs_own_source"])),
]


def fidelity_table(audits: dict[str, dict]) -> str:
    scopes = ["overall"] + sorted({c for a in audits.values() for c in a.get("per_config", {})})
    out = []
    for scope in scopes:
        head = f"| {scope} | " + " | ".join(audits) + " |"
        out += [head, "|---" * (len(audits) + 1) + "|"]
        for label, get in FIDELITY_ROWS:
            cells = []
            for a in audits.values():
                sec = a["overall"] if scope == "overall" else a.get("per_config", {}).get(scope)
                try:
                    cells.append(get(sec) if sec else "-")
                except (KeyError, TypeError):
                    cells.append("-")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _arm_cells(s: dict) -> str:
    auroc = s["auroc"]
    cell = f"{auroc['mean']:.3f} ± {auroc['std']:.3f}"
    for key, name in (("auroc_vs_real", "real"), ("auroc_vs_oversampled", "oversampled")):
        d = s.get(key)
        if d and d.get("ci95"):
            lo, hi = d["ci95"]
            cell += f"; vs {name} {d['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return cell


def benchmark_table(results: dict[str, dict]) -> str:
    """Test AUROC (mean ± sd over seeds) and the paired differences from `real` (and from `real-oversampled`,
    where the benchmark measured them) with their patient-and-seed bootstrap intervals, per task and arm;
    one column per release (each on its own work folder's split)."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for name, r in results.items():
        for task, arms in r["summary"].items():
            for arm, s in arms.items():
                rows.setdefault((task, arm), {})[name] = _arm_cells(s)
    out = ["| task | arm | " + " | ".join(results) + " |", "|---|---" + "|---" * len(results) + "|"]
    for (task, arm), cells in rows.items():
        out.append(f"| {task} | {arm} | " + " | ".join(cells.get(n, "-") for n in results) + " |")
    return "\n".join(out)


def _external_cell(s: dict, name: str) -> str:
    ext = (s.get("controls") or {}).get("external", {}).get(name)
    if not ext or ext["sensitivity"].get("mean") is None:
        return "-"
    cell = f"{100 * ext['sensitivity']['mean']:.1f}%"
    if ext.get("sensitivity_patient_ci95"):
        lo, hi = ext["sensitivity_patient_ci95"]
        cell += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return cell + f" (internal {100 * s['sensitivity']['mean']:.1f}%)"


def external_table(results: dict[str, dict]) -> str:
    """Sensitivity on each external set (mean over seeds, patient-bootstrap interval) beside the internal
    test sensitivity, per task and arm; one column per release. Empty when no benchmark scored one."""
    names = sorted({n for r in results.values() for arms in r["summary"].values() for s in arms.values()
                    for n in ((s.get("controls") or {}).get("external") or {})})
    keys = dict.fromkeys((t, a) for r in results.values() for t, arms in r["summary"].items() for a in arms)
    out = []
    for ext in names:
        out += ["| task | arm | " + " | ".join(f"{n}: {ext} sensitivity [patient CI]" for n in results) + " |",
                "|---|---" + "|---" * len(results) + "|"]
        for task, arm in keys:
            cells = [(_external_cell(r["summary"][task][arm], ext) if arm in r["summary"].get(task, {}) else "-")
                     for r in results.values()]
            out.append(f"| {task} | {arm} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("releases", nargs="+", help="NAME=FOLDER of a collected sample release")
    a = ap.parse_args(argv)
    folders = dict(s.split("=", 1) for s in a.releases)
    print(fidelity_table({n: _audit(Path(f)) for n, f in folders.items()}))
    bench = {n: json.loads((Path(f) / "benchmark" / "results.json").read_text())
             for n, f in folders.items() if Path(f).is_dir() and (Path(f) / "benchmark" / "results.json").is_file()}
    if bench:
        print(benchmark_table(bench))
        print()
        print(external_table(bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
