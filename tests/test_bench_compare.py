"""The bench helpers behind issue 19's side-by-side and its probe diagnostic: ``compare_releases.py`` copies
what each audit says into one table (nothing recomputed), and ``intensity_baseline.HistogramMatch`` maps an
image's grey levels onto a reference histogram without moving anything in the frame."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
COMPARISON = ROOT / "bench" / "results" / "release-comparison"


def _bench(name: str):
    """A bench script as a module, without putting bench/ on this worker's sys.path."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare_releases = _bench("compare_releases")
HistogramMatch = _bench("intensity_baseline").HistogramMatch


@pytest.mark.no_data
def test_the_side_by_side_table_copies_each_audit():
    audits = {n: json.loads((COMPARISON / f"{n}-audit.json").read_text())["fidelity"] for n in ("paper", "refined")}
    table = compare_releases.fidelity_table(audits)
    blocks = {b.splitlines()[0].split("|")[1].strip(): b for b in table.strip().split("\n\n")}
    assert set(blocks) == {"overall", "g_nc", "g_pc"}
    for scope, block in blocks.items():
        row = next(line for line in block.splitlines() if line.startswith("| probe AUROC, real vs synthetic"))
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        for name, cell in zip(audits, cells):
            sec = audits[name]["overall"] if scope == "overall" else audits[name]["per_config"][scope]
            assert cell.startswith(f"{sec['probes']['real_vs_synthetic']['auroc']:.3f} [")
        spectral = next(line for line in block.splitlines() if line.startswith("| spectral distance"))
        for name in audits:
            sec = audits[name]["overall"] if scope == "overall" else audits[name]["per_config"][scope]
            assert f"{sec['spectrum']['synthetic_vs_heldout']:.3f} (untranslated" in spectral
    # the numbers the README and the closing note quote
    assert "0.134 (untranslated 0.023" in blocks["overall"] and "0.061 (untranslated 0.082" in blocks["overall"]


@pytest.mark.no_data
def test_compare_releases_reads_a_collected_release_folder(tmp_path, capsys):
    folder = tmp_path / "rel"
    (folder / "audit").mkdir(parents=True)
    (folder / "audit" / "audit.json").write_text((COMPARISON / "refined-audit.json").read_text())
    assert compare_releases.main([f"refined={folder}", f"paper={COMPARISON / 'paper-audit.json'}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| overall | refined | paper |") and "| task | arm |" not in out  # no benchmark yet
    (folder / "audit" / "audit.json").write_text("{}")
    with pytest.raises(SystemExit, match="no audit.json with a fidelity section"):
        compare_releases.main([f"refined={folder}"])


@pytest.mark.no_data
def test_external_sensitivity_is_copied_beside_the_internal_one():
    """The committed rerun's Hannover sensitivities, one column per release; an arm a release lacks is '-'."""
    rerun = json.loads((ROOT / "bench" / "results" / "sample-release-rerun" / "benchmark" / "results.json").read_text())
    older = json.loads((ROOT / "bench" / "results" / "sample-release-rse" / "benchmark" / "results.json").read_text())
    table = compare_releases.external_table({"paper": rerun, "refined": older})
    assert table.splitlines()[0] == ("| task | arm | paper: hannover sensitivity [patient CI] "
                                     "| refined: hannover sensitivity [patient CI] |")
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in table.splitlines()[2:] if line}
    s = rerun["summary"]["normal-covid"]["real"]
    ext = s["controls"]["external"]["hannover"]
    lo, hi = ext["sensitivity_patient_ci95"]
    assert (f"| {100 * ext['sensitivity']['mean']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] "
            f"(internal {100 * s['sensitivity']['mean']:.1f}%) |") in rows[("normal-covid", "real")]
    assert rows[("normal-covid", "real+null")].endswith("| - |")  # the older benchmark had no null arm
    assert compare_releases.external_table({"x": {"summary": {"t": {"real": {"auroc": {}}}}}}) == ""


@pytest.mark.no_data
def test_histogram_matching_moves_grey_levels_not_layout():
    rng = np.random.default_rng(0)
    reference = rng.integers(100, 256, size=(5, 32, 32)).astype(np.uint8)  # bright
    net = HistogramMatch(reference, levels=256)
    img = torch.linspace(-1, 0, 32 * 32).reshape(1, 1, 32, 32)  # dark, a ramp left to right, top to bottom
    img = img[..., torch.randperm(32)]  # columns shuffled: a layout of its own
    out = net(img)
    assert out.shape == img.shape
    # the same order of pixels (layout kept): sorted by the input, the output never decreases ...
    by_input = out.flatten()[img.flatten().argsort()]
    assert bool((by_input[1:] >= by_input[:-1] - 1e-6).all()) and by_input[-1] > by_input[0]
    # ... on the reference's grey levels
    ref = reference.astype(np.float64) / 127.5 - 1
    got = np.sort(out.flatten().numpy())
    assert got[0] == pytest.approx(ref.min(), abs=1e-6) and got[-1] == pytest.approx(ref.max(), abs=1e-6)
    assert np.median(got) == pytest.approx(np.median(ref), abs=0.02)
