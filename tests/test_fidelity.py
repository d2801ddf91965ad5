"""Fidelity against baselines (cxrsynth/stages/audit/fidelity.py), on images whose answer is known.

One score of a small work folder (the COVID-19 and NIH samples, split by patient) with three made-up
"translations" as configs: the untranslated sources themselves (must sit at the baseline), copies of
the real COVID-19 training images (must sit at the floor), those copies with horizontal stripes
(must move the spectral distance) and the sources' negatives (must be named as inverted).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrsynth.artifacts import SplitData
from cxrsynth.stages.audit import fidelity as F
from cxrsynth.stages.audit.encoder import cxr_encoder
from cxrsynth.core.errors import BadInputError, DataNotFoundError
from cxrsynth.data.images import load_canonical
from cxrsynth.core.layout import WorkLayout
from cxrsynth.core.paths import read_json, sha256_file

from .conftest import DATA, copy_workdir

SIZE = 64
CFG = F.FidelityConfig(repeats=8, probe_bootstrap=100, encoder_epochs=4)
ROOT = Path(__file__).resolve().parent.parent


def stripes(images: np.ndarray) -> np.ndarray:
    """Horizontal banding: every other pair of rows 40 grey levels brighter."""
    out = images.astype(np.int16)
    out[:, (np.arange(images.shape[1]) // 2) % 2 == 1, :] += 40
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def wd(planned_workdir, tmp_path_factory):
    return copy_workdir(planned_workdir, tmp_path_factory.mktemp("fid") / "wd")


@pytest.fixture(scope="module")
def data(wd):
    """The work folder's records, split and plan, read once (the fidelity module opens no work folder)."""
    return SplitData.read(wd)


@pytest.fixture(scope="module")
def scored(wd, data):
    records, train, _, _, _ = F.real_sets(data, SIZE)
    assign = read_json(WorkLayout(wd).splits)["assignments"]
    covid = sorted(i for i, r in records.items() if r.label == "covid" and assign.get(i) == "train")
    others = sorted(i for i, r in records.items() if r.label != "covid" and assign.get(i) == "train")
    n = len(covid)
    src_a, src_b = others[:n], others[n:2 * n]
    untranslated = np.stack([load_canonical(records[i].path, SIZE) for i in src_a])
    syn = np.concatenate([untranslated, train, stripes(train), 255 - untranslated])
    ids = src_a + src_b + src_b + src_a
    configs = ["untranslated"] * n + ["copy"] * n + ["striped"] * n + ["inverted"] * n
    spaces = F.feature_spaces(data, encoder_epochs=CFG.encoder_epochs, encoder_cache=WorkLayout(wd).cxr_encoder)
    return F.score(data, syn, ids, configs, CFG, spaces)


def test_encoder_is_cached_with_its_sha256_and_training(wd, data):
    layout = WorkLayout(wd)
    assert layout.cxr_encoder_info == layout.cxr_encoder.with_suffix(".json")  # where cxr_encoder writes it
    net, info = cxr_encoder(data, CFG.encoder_epochs, cache=layout.cxr_encoder)
    assert layout.cxr_encoder.is_file() and info["sha256"] == sha256_file(layout.cxr_encoder)
    assert set(info["by_class"]) == {"normal", "pneumonia", "covid"} and all(info["by_class"].values())
    assert info["images"] == sum(info["by_class"].values()) and info["epochs"] == CFG.encoder_epochs
    assert 0 <= info["validation_accuracy"] <= 1  # measured on the validation split, never trained on
    mtime = layout.cxr_encoder.stat().st_mtime_ns
    _, again = cxr_encoder(data, CFG.encoder_epochs, cache=layout.cxr_encoder)
    assert again["sha256"] == info["sha256"] and layout.cxr_encoder.stat().st_mtime_ns == mtime  # not retrained
    x = np.random.default_rng(0).integers(0, 256, (3, 128, 128), dtype=np.uint8)
    from cxrsynth.stages.audit.embed import embed

    assert embed(net, x).shape == (3, 64)


@pytest.fixture(scope="module")
def external_scored(wd, data):
    """The untranslated sources scored with two "other collections": the Hannover repository (real
    COVID-19 of another hospital) and copies of the work folder's own real COVID-19 training images."""
    records, train, train_g, _, _ = F.real_sets(data, SIZE)
    assign = read_json(WorkLayout(wd).splits)["assignments"]
    ids = sorted(i for i, r in records.items() if r.label != "covid" and assign.get(i) == "train")[:len(train)]
    syn = np.stack([load_canonical(records[i].path, SIZE) for i in ids])
    hannover = F.external_real(data, {"hannover": str(DATA / "covid-19-image-repository")}, SIZE)
    copies = F.ExternalReal("copies", train.copy(), [f"copy:{g}" for g in train_g], {})
    spaces = F.feature_spaces(data, encoder_epochs=CFG.encoder_epochs, encoder_cache=WorkLayout(wd).cxr_encoder)
    return F.score(data, syn, ids, None, CFG, spaces, external=hannover + [copies])


def test_another_hospital_is_measured_as_a_third_baseline(external_scored):
    """Real COVID-19 of another hospital (Hannover) is told from the collection's own at a high AUROC, so
    a probe this high does not by itself say "not real"; copies of the training images sit at chance and,
    in KID, exactly at the real floor (the same images, subsamples and n)."""
    ext, o = external_scored["external_real"], external_scored["overall"]
    h, c = ext["hannover"], ext["copies"]
    assert h["n"] >= 200 and h["patients"] >= 50 and h["read"]["kept"] == h["n"]
    assert h["probe_real_vs_external"]["auroc"] > 0.85 and h["probe_real_vs_external"]["auroc_ci95"][0] > 0.75
    assert c["probe_real_vs_external"]["auroc"] < 0.65
    for space, k in o["kid"].items():
        assert c["kid_vs_heldout"][space]["mean"] == pytest.approx(k["floor_train_vs_heldout"]["mean"]), space
        assert h["kid_vs_heldout"][space]["n"] == k["synthetic_vs_heldout"]["n"], space
        assert h["kid_vs_heldout"][space]["mean"] > k["floor_train_vs_heldout"]["interval"][1], space
    assert c["spectral_vs_heldout"] == pytest.approx(o["spectrum"]["floor_train_vs_heldout"])
    text = F.sentence(external_scored)
    assert f"another collection (hannover) {h['probe_real_vs_external']['auroc']:.2f}" in text
    r = F.row(external_scored, "x")
    assert r["external"] == "hannover" and r["probe_real_vs_external_auroc"] == h["probe_real_vs_external"]["auroc"]
    assert r["kid_pixels_external_heldout"] == h["kid_vs_heldout"]["pixels"]["mean"]
    page = F.report_html(external_scored)
    from jsonschema import Draft202012Validator

    schema = json.loads((ROOT / "manifests" / "audit.schema.json").read_text())
    sub = Draft202012Validator({"$defs": schema["$defs"], **schema["properties"]["fidelity"]})
    doc = json.loads(json.dumps(external_scored))
    sub.validate(doc)
    del doc["external_real"]["hannover"]["probe_real_vs_external"]
    assert list(sub.iter_errors(doc))
    assert "another collection (hannover, " in page and f"{h['probe_real_vs_external']['auroc']:.3f}" in page


def test_an_external_folder_without_covid_images_is_refused(data):
    with pytest.raises(DataNotFoundError, match="no COVID-19 image"):
        F.external_real(data, {"nih": str(DATA / "nih-chestxray14-sample")}, SIZE)


def test_untranslated_sources_sit_at_the_baseline(scored):
    part = scored["per_config"]["untranslated"]
    for name, k in part["kid"].items():
        assert k["synthetic_vs_heldout"]["mean"] == pytest.approx(k["untranslated_vs_heldout"]["mean"]), name
        assert k["placement"] == pytest.approx(0.0, abs=1e-9), name
    assert part["change"]["ssim_to_source"]["median"] == pytest.approx(1.0)
    assert part["probes"]["translated_vs_own_source"]["auroc"] == pytest.approx(0.5)
    assert part["probes"]["real_vs_synthetic"]["auroc"] == part["probes"]["real_vs_untranslated"]["auroc"] > 0.7
    assert part["probes"]["heldout_vs_synthetic"]["auroc"] == part["probes"]["heldout_vs_untranslated"]["auroc"] > 0.7


def test_a_copy_of_real_covid_sits_at_the_floor(scored):
    part = scored["per_config"]["copy"]
    assert {"pixels", "cxr_encoder"} <= set(part["kid"])
    for name, k in part["kid"].items():
        floor = k["floor_train_vs_heldout"]
        assert k["synthetic_vs_heldout"]["mean"] == pytest.approx(floor["mean"]), name
        assert k["placement"] == pytest.approx(1.0), name
        # and the untranslated baseline is far from it: the placement scale is not degenerate
        assert k["untranslated_vs_heldout"]["interval"][0] > floor["interval"][1], name
    assert part["probes"]["real_vs_synthetic"]["auroc"] < 0.65
    # against held-out real images (no discriminator saw them) copies of real ones are near chance too, and
    # the untranslated sources are told apart as from the training images
    assert part["probes"]["heldout_vs_synthetic"]["auroc"] < 0.7
    assert part["change"]["ssim_to_source"]["median"] < 0.6  # copies of other images, not of their sources


def test_linkage_to_the_own_source_separates_untranslated_from_unrelated_images(scored):
    """Untranslated images are their own sources (top-1 100%); copies of real COVID-19 training images have
    nothing to do with the sources they are paired with (near chance); negatives of the sources are far
    from them in z-scored pixels. A source translated twice counts once in the pool."""
    link = {c: scored["per_config"][c]["change"]["linkage_to_source"] for c in ("untranslated", "copy", "inverted")}
    n = scored["per_config"]["untranslated"]["n"]["synthetic"]
    assert link["untranslated"]["top1"] == 1.0 and link["untranslated"]["pool_size"] == n
    assert link["untranslated"]["chance_top1"] == pytest.approx(1 / n)
    assert link["copy"]["top1"] < 5 / n and link["inverted"]["top1"] < 5 / n
    rng = np.random.default_rng(0)
    src = rng.integers(0, 255, (6, 8, 8)).astype(np.uint8)
    twice = np.concatenate([src, src[:2]])
    emb = twice.reshape(len(twice), -1).astype(float)
    assert F.source_linkage(emb, emb, twice) == {"top1": 1.0, "chance_top1": 1 / 6, "pool_size": 6}
    assert F.row(scored, "x")["linkage_to_source_top1"] == scored["overall"]["change"]["linkage_to_source"]["top1"]


def test_an_intensity_inversion_is_measured_and_named(scored):
    """The shortcut a CycleGAN can take (and the candidate recipe took mid-training): negatives of the
    sources. SSIM alone reads it as "changed a lot"; the correlation with the source says how."""
    inverted, same = (scored["per_config"][c]["change"] for c in ("inverted", "untranslated"))
    assert inverted["correlation_to_source"]["median"] == pytest.approx(-1.0)
    assert inverted["correlation_to_source"]["inverted_share"] == 1.0
    assert same["correlation_to_source"]["median"] == pytest.approx(1.0) and same["correlation_to_source"]["inverted_share"] == 0
    assert "100% of them invert their source's intensities" in F.sentence({"overall": scored["per_config"]["inverted"]})
    assert "invert" not in F.sentence({"overall": scored["per_config"]["untranslated"]})
    # overall: the inverted quarter, and the few unrelated pairs (copies of other images) that correlate
    # negatively by chance: not "most"
    overall = scored["overall"]["change"]["correlation_to_source"]
    assert 0.25 <= overall["inverted_share"] < 0.35 and "invert" not in F.sentence(scored)
    assert F.correlation_pairs(np.zeros((1, 4, 4)), np.ones((1, 4, 4))).tolist() == [0.0]  # flat: no correlation


def test_stripes_move_the_spectral_distance(scored):
    copy, striped = scored["per_config"]["copy"]["spectrum"], scored["per_config"]["striped"]["spectrum"]
    assert copy["synthetic_vs_heldout"] == pytest.approx(copy["floor_train_vs_heldout"])
    # beyond a copy (the real floor) and beyond doing nothing (untranslated normals against held-out COVID-19,
    # a real domain gap): 2.1x and 1.85x since the rigorous split draws patient groups in a seeded random
    # order (both were over 2x with the largest-first order)
    assert striped["synthetic_vs_heldout"] > 1.5 * max(copy["synthetic_vs_heldout"], striped["untranslated_vs_heldout"])
    # the banding's own frequency (period 4 rows: a quarter cycle per pixel) is where the spectra part most
    syn, held = (np.asarray(scored["per_config"]["striped"]["spectrum"]["mean_log_power"][k]) for k in ("syn", "held"))
    assert int(np.argmax(np.abs(syn - held)[1:])) + 1 == SIZE // 4
    assert striped["placement"] is None or striped["placement"] < 0  # farther from real than doing nothing
    # beyond the floor, with patient-resample intervals: a copy of the training images is exactly at it (0),
    # the stripes wholly beyond it
    ex = {c: scored["per_config"][c]["spectrum"]["excess_over_floor"]["heldout"]["synthetic"] for c in ("copy", "striped")}
    assert ex["copy"]["value"] == pytest.approx(0, abs=1e-12) and ex["copy"]["interval"][0] < 0 < ex["copy"]["interval"][1]
    assert ex["striped"]["interval"][0] > 0 and ex["striped"]["value"] == pytest.approx(
        striped["synthetic_vs_heldout"] - striped["floor_train_vs_heldout"])
    # against the training images as the reference: a copy of them is at 0 distance, the floor below it.
    # The stripes move it by more than the floor is (+0.010 against -0.051), yet its interval holds 0: on
    # this reference these stripes cannot be told from the gap between two real sets (the reason both show)
    to_train = {c: scored["per_config"][c]["spectrum"]["excess_over_floor"]["train"]["synthetic"] for c in ("copy", "striped")}
    assert to_train["copy"]["value"] == pytest.approx(-copy["floor_train_vs_heldout"])
    assert to_train["striped"]["value"] - to_train["copy"]["value"] > copy["floor_train_vs_heldout"]
    r = F.row({**scored, "overall": scored["per_config"]["striped"]}, "striped")
    assert r["spectral_excess_synthetic_ci95"] == ex["striped"]["interval"]
    assert r["spectral_excess_train_synthetic"] == to_train["striped"]["value"]
    # and the card's sentence says which side of the floor's noise each lies on
    assert "power spectrum is farther from held-out real COVID-19" in F.sentence({"overall": scored["per_config"]["striped"]})
    assert "power spectrum cannot be told from real" in F.sentence({"overall": scored["per_config"]["copy"]})


def test_spectral_excess_is_centred_on_its_value_and_resamples_patients():
    """Another draw of the training distribution is at the floor within its interval; a set with its top
    frequencies halved is beyond it. A patient's images are drawn together: half smooth and half sharp
    images give a wider interval when each half is one patient than when each image is its own."""
    rng = np.random.default_rng(0)
    spec = lambda n: F.radial_spectrum(rng.normal(128, 30, (n, 32, 32)).clip(0, 255))
    train, held, other = spec(60), spec(40), spec(60)
    many = lambda n: [f"p{i}" for i in range(n)]
    same = F.spectral_excess(other, many(60), train, many(60), held, many(40), 300, 0)
    assert same["interval"][0] < 0 < same["interval"][1] and same["repeats"] == 300
    smooth = F.radial_spectrum(np.stack([np.kron(x, np.ones((2, 2))) for x in rng.normal(128, 30, (60, 16, 16))]))
    far = F.spectral_excess(smooth, many(60), train, many(60), held, many(40), 300, 0)
    assert far["interval"][0] > 0 and far["interval"][0] <= far["value"] <= far["interval"][1]
    mixed = np.concatenate([smooth[:30], other[:30]])
    two = ["smooth"] * 30 + ["sharp"] * 30
    width = lambda e: e["interval"][1] - e["interval"][0]
    assert width(F.spectral_excess(mixed, two, train, many(60), held, many(40), 300, 0)) > \
        2 * width(F.spectral_excess(mixed, many(60), train, many(60), held, many(40), 300, 0))
    assert F.spectral_excess(other, ["p"] * 60, train, many(60), held, many(40))["interval"] is None


def test_kid_intervals_contain_their_means_and_halves_of_real_are_near_chance(scored):
    for part in [scored["overall"], *scored["per_config"].values()]:
        for k in part["kid"].values():
            for c in ("synthetic_vs_train", "synthetic_vs_heldout", "untranslated_vs_heldout", "floor_train_vs_heldout"):
                lo, hi = k[c]["interval"]
                assert lo <= k[c]["mean"] <= hi and k[c]["n"] == k["floor_train_vs_heldout"]["n"]
    halves = scored["overall"]["probes"]["real_halves"]
    assert abs(halves["auroc"] - 0.5) < 0.15 and halves["n_a"] > 20 and halves["n_b"] > 20


def test_kid_interval_and_placement_on_known_features():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    same = F.kid_interval(a, b, 100, 20)
    moved = F.kid_interval(a, b + 1.0, 100, 20)
    assert same["interval"][0] < 0.01 < moved["interval"][0] and same["n"] == 100
    assert F.placement(0.5, 0.5, 0.1) == 0 and F.placement(0.1, 0.5, 0.1) == 1 and F.placement(0.9, 0.5, 0.1) < 0
    assert F.placement(0.3, 0.2, 0.2) is None and F.placement(0.3, 0.2, 0.25) is None


def test_kid_of_subsamples_is_torch_fidelitys_kid_of_each():
    """kid_interval indexes one kernel matrix (small sets) or computes one per draw (large sets): either way
    each draw's value is torch-fidelity's KID of that pair of subsamples."""
    from cxrsynth.stages.audit import quality as Q

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(60, 16)), rng.normal(size=(80, 16)) + 0.3
    for n, repeats in ((40, 5), (8, 2)):  # 40 five times: one kernel matrix; 8 twice (16 rows of 60): one per draw
        picks = [(rng.choice(len(a), n, replace=False), rng.choice(len(b), n, replace=False)) for _ in range(repeats)]
        want = [Q.kid_from_features(a[ia], b[ib], n, 1, 0) for ia, ib in picks]
        assert Q.kid_subsets(a, b, picks) == pytest.approx(want, rel=1e-9, abs=1e-12)
    got = F.kid_interval(a, b, 30, 6, seed=4)
    draw = np.random.default_rng(4)
    want = [Q.kid_from_features(a[draw.choice(60, 30, replace=False)], b[draw.choice(80, 30, replace=False)], 30, 1, 0)
            for _ in range(6)]
    assert got["mean"] == pytest.approx(np.mean(want), rel=1e-9) and got["std"] == pytest.approx(np.std(want), rel=1e-6)


def test_radial_spectrum_peaks_at_the_frequency_of_a_sinusoid():
    y = np.arange(64)[:, None] * np.ones((1, 64))
    img = (127 + 100 * np.sin(2 * np.pi * 8 * y / 64)).astype(np.uint8)
    spec = F.radial_spectrum(img[None])
    assert spec.shape == (1, 33) and int(np.argmax(spec[0, 1:])) + 1 == 8


def test_section_matches_the_audit_schema(scored):
    from jsonschema import Draft202012Validator

    schema = json.loads((ROOT / "manifests" / "audit.schema.json").read_text())
    sub = {"$defs": schema["$defs"], **schema["properties"]["fidelity"]}
    doc = json.loads(json.dumps(scored))
    Draft202012Validator(sub).validate(doc)
    del doc["overall"]["probes"]["real_halves"]
    assert list(Draft202012Validator(sub).iter_errors(doc))  # the schema does check the parts


def test_sentence_row_and_report(scored, tmp_path):
    text = F.sentence(scored)
    k = scored["overall"]["kid"]["cxr_encoder"]
    assert f"{k['untranslated_vs_heldout']['mean']:.3g}" in text and "untranslated" in text and "cxr encoder" in text
    r = F.row(scored, "x")
    assert r["kid_pixels_placement"] == scored["overall"]["kid"]["pixels"]["placement"]
    assert r["inverted_share"] == scored["overall"]["change"]["correlation_to_source"]["inverted_share"]
    assert r["correlation_to_source_median"] == scored["overall"]["change"]["correlation_to_source"]["median"]
    assert r["probe_heldout_vs_synthetic_auroc"] == scored["overall"]["probes"]["heldout_vs_synthetic"]["auroc"]
    assert "from held-out real COVID-19, which no discriminator saw" in text
    assert r["kid_inception_floor"] is None or "inception" in scored["overall"]["kid"]
    fig = F.spectrum_figure(scored, tmp_path / "spectrum.png")
    page = F.report_html(scored, fig)
    assert "Fidelity" in page and "data:image/png;base64" in page and f"{k['placement']:.2f}" in page


def test_score_fidelity_script_scores_a_folder_of_translations(wd, data, scored, tmp_path):
    records, train, _, _, _ = F.real_sets(data, SIZE)
    assign = read_json(WorkLayout(wd).splits)["assignments"]
    ids = sorted(i for i, r in records.items() if r.label == "normal" and assign.get(i) == "train")[:40]
    folder = tmp_path / "variant-a" / "heldout"
    folder.mkdir(parents=True)
    for k, i in enumerate(ids):
        Image.fromarray(load_canonical(records[i].path, SIZE)).save(folder / f"{k:03d}.png")
    (folder / "sources.json").write_text(json.dumps({f"{k:03d}.png": i for k, i in enumerate(ids)}))
    out = tmp_path / "rows.jsonl"
    args = [sys.executable, str(ROOT / "bench" / "score_fidelity.py"), "--workdir", str(wd), "--out", str(out),
            "--set", "repeats=4", "--set", "probe_bootstrap=50", "--set", f"encoder_epochs={CFG.encoder_epochs}", str(folder),
            "--external", f"hannover={DATA / 'covid-19-image-repository'}"]
    subprocess.run(args, check=True, cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["run"] == "variant-a" and rows[0]["n_synthetic"] == 40
    assert set(rows[0]) - {"seconds"} == set(F.row(scored, "x"))  # the same columns as every other run
    assert rows[0]["kid_pixels_placement"] == pytest.approx(0.0, abs=1e-9)  # untranslated: at the baseline
    assert rows[0]["external"] == "hannover" and rows[0]["probe_real_vs_external_auroc"] > 0.8
    (folder / "sources.json").write_text(json.dumps({"missing.png": ids[0]}))
    with pytest.raises(BadInputError, match="missing.png"):
        F.read_translations(folder)
