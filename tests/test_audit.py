"""The audit on hand-made cases: its measures on hand-computed points; calibrated verdicts that flag an
identical copy in every privacy test, pass an unrelated image set, and do not flag fresh real images
(held-out patients against the training ones); KID / FID / PRDC on equal-size subsamples; the Inception
path from a planted stand-in weights file (no network); the audit of a release down to the card."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from cxrsynth.stages.audit import privacy as P
from cxrsynth.stages.audit import quality as Q
from cxrsynth.stages.audit.embed import PixelEmbedding, embed
from cxrsynth.pipeline import audit_in
from cxrsynth.stages.audit.run import AuditConfig
from cxrsynth.stages.audit.verdicts import TABLE, THRESHOLDS, evaluate, per_image, verdicts
from cxrsynth.core.errors import ConfigError
from cxrsynth.data.images import load_canonical
from cxrsynth.core.layout import WorkLayout
from cxrsynth.core.paths import sha256_file

from .conftest import COVID, NIH


def test_measures_on_hand_computed_points():
    syn, pool = np.array([[0.0, 0.0]]), np.array([[0.0, 0.1], [0.0, 1.0], [5.0, 5.0]])
    lk = P.linkage(syn, pool, np.array([1]))
    assert lk["ranks"].tolist() == [2] and lk["top1"] == 0 and lk["top5"] == 1 and lk["mrr"] == 0.5
    assert lk["chance_top1"] == pytest.approx(1 / 3) and lk["chance_mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    # ties are split evenly: the source tied with two others at the top counts 1/3 towards top-1,
    # its rank is the mean of 1, 2, 3 and its reciprocal rank the mean of 1, 1/2, 1/3
    tied = P.linkage(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [9.0, 9.0]]), np.array([1]))
    assert tied["top1"] == pytest.approx(1 / 3) and tied["ranks"].tolist() == [2.0]
    assert tied["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3) and tied["ties_share"] == 1.0
    pool2 = np.array([[0.0, 0.0], [1.0, 0.0]])
    d = P.closeness(np.array([[0.25, 0.0], [0.0, 2.0]]), pool2, P.pool_radius(pool2))
    assert d["dcr"].tolist() == [0.25, 2.0] and d["nndr"][0] == pytest.approx(0.25 / 0.75)
    assert d["authentic"].tolist() == [False, True]  # 0.25 < 1 (r* = (0, 0) to its neighbour); 2 > 1
    # one synthetic point near the training image, one near the held-out one: half closer to training
    assert P.closer_to_training(np.array([[1.0, 0.0], [9.0, 0.0]]), np.array([[0.0, 0.0]]), np.array([[10.0, 0.0]])) == 0.5
    st = Q.pixel_stats(np.stack([np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)]))
    assert st["mean"] == 0.5 and st["std"] == 0.5 and st["per_image_mean_std"] == 0.5
    assert st["histogram16"][0] == 0.5 and st["histogram16"][-1] == 0.5
    x = np.random.default_rng(0).normal(size=(40, 3))
    same = Q.prdc(x, x, k=5)
    assert same["precision"] == 1 and same["recall"] == 1 and same["coverage"] == 1
    shifted = Q.prdc(x, x + 100, k=5)
    assert shifted["precision"] == 0 and shifted["coverage"] == 0


def test_batched_ssim_is_scikit_image_ssim():
    a = load_canonical(next(NIH.glob("images/*.png")), 64)
    others = np.stack([load_canonical(p, 64) for p in sorted(NIH.glob("images/*.png"))[1:6]])
    ref = [structural_similarity(a / 255, b / 255, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for b in others]
    assert P.ssim_many(a, others) == pytest.approx(ref, abs=1e-12)
    assert P.ssim(a, a) == 1.0 and P.psnr(a, a) == float("inf")


def test_tests_against_chance_and_new_images():
    # 30 successes of 100 against chance 0.1: significant; 12 of 100 is not at p < 0.01
    hi = P.chance_test(np.r_[np.ones(30), np.zeros(70)], 0.1)
    assert hi["value"] == 0.3 and hi["p_value"] < 1e-6 and hi["interval"][0] > 0
    lo = P.chance_test(np.r_[np.ones(12), np.zeros(88)], 0.1)
    assert lo["p_value"] > 0.01
    # identical distributions: difference near 0 and the interval holds it
    rng = np.random.default_rng(0)
    t = P.tail_difference(rng.normal(size=400), rng.normal(size=400), 5, 500)
    assert abs(t["difference"]) < 0.05 and t["interval"][0] < 0 < t["interval"][1]
    c = P.tail_difference(np.zeros(100), rng.normal(size=400) + 5, 5, 500)
    assert c["value"] == 1.0 and c["difference"] == pytest.approx(0.95) and c["interval"][0] > 0.9


class _MeanFeature(torch.nn.Module):
    """A 1-feature embedding (the image's mean), so that FID can be computed by hand."""

    num_features = 1
    name = "mean intensity"

    def forward(self, x):
        return x.float().flatten(1).mean(1, keepdim=True)


def test_fid_and_kid_by_hand_on_equal_size_subsamples():
    v = np.array([10, 20, 30, 40, 50], dtype=float)
    w = np.array([100, 120, 140, 160, 180], dtype=float)
    a = embed(_MeanFeature(), np.stack([np.full((16, 16), x, np.uint8) for x in v]))
    b = embed(_MeanFeature(), np.stack([np.full((16, 16), x, np.uint8) for x in w]))
    got = Q.compare(a, b, repeats=3)
    # 1-D Frechet distance of two Gaussians, sample variances (n - 1), features in [0, 1]
    m1, m2, s1, s2 = v.mean() / 255, w.mean() / 255, v.var(ddof=1) / 255**2, w.var(ddof=1) / 255**2
    assert got["fid"]["mean"] == pytest.approx((m1 - m2) ** 2 + s1 + s2 - 2 * np.sqrt(s1 * s2), rel=1e-5)
    assert got["n"] == 5 and got["dimension"] == 1 and got["repeats"] == 3 and got["fid"]["std"] < 1e-12
    # KID, the unbiased MMD^2 with kernel (x y / d + 1)^3, by hand
    k = lambda x, y: (np.outer(x, y) + 1) ** 3
    x, y = a[:, 0].astype(float), b[:, 0].astype(float)
    off = lambda m: (m.sum() - np.trace(m)) / (len(m) * (len(m) - 1))
    assert got["kid"]["mean"] == pytest.approx(off(k(x, x)) + off(k(y, y)) - 2 * k(x, y).mean(), rel=1e-6)
    same = Q.compare(a, a.copy(), repeats=2)
    assert abs(same["fid"]["mean"]) < 1e-9 and got["kid"]["mean"] > 0.05
    # unequal sets: both subsampled to the smaller size, repeated, with the spread over the repeats
    rng = np.random.default_rng(0)
    big, small = rng.normal(size=(300, 8)), rng.normal(size=(40, 8)) + 0.5
    c = Q.compare(small, big, n_max=1000, repeats=4)
    assert c["n"] == 40 and c["n_real"] == 40 and c["n_fake"] == 300 and c["fid"]["std"] > 0
    assert c["precision"]["mean"] is not None and "note" not in c  # n > d, and the larger set differs per repeat


@pytest.mark.parametrize("n,d", [(30, 64), (200, 16)])
def test_fid_matches_torch_fidelity(n, d):
    from torch_fidelity.metric_fid import (
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) * 1.3 + 0.2
    ref = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(a)),
                                   fid_features_to_statistics(torch.from_numpy(b)), False)["frechet_inception_distance"]
    assert Q.fid_from_features(a, b) == pytest.approx(ref, rel=1e-6)


# --- Inception, from a planted stand-in weights file ------------------------------------------------

def plant_inception(path):
    """A tiny file in the format torch-fidelity loads (a state dict of FeatureExtractorInceptionV3):
    each tensor a strided view of a small random storage (torch.save keeps views), so the file is a
    few hundred kB instead of 92 MB while every key and shape is the real one."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    empty = path.parent / "empty.pth"
    torch.save({}, empty)
    keep = torch.nn.Module.load_state_dict
    torch.nn.Module.load_state_dict = lambda self, sd, strict=True, assign=False: None
    try:
        shapes = {k: (v.shape, v.dtype) for k, v in
                  FeatureExtractorInceptionV3("x", ["2048"], feature_extractor_weights_path=str(empty)).state_dict().items()}
    finally:
        torch.nn.Module.load_state_dict = keep
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, (shape, dtype) in shapes.items():
        if not dtype.is_floating_point or len(shape) == 0:
            sd[k] = torch.zeros(shape, dtype=dtype)
            continue
        rest = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        store = torch.randn(shape[0] + rest, generator=g)
        if k.endswith("running_var"):
            store = store.abs() + 0.5
        elif k.endswith("weight") and len(shape) > 1:
            store = store / np.sqrt(rest)
        strides = [1] + [int(np.prod(shape[i + 1:])) for i in range(1, len(shape))]
        sd[k] = torch.as_strided(store, tuple(shape), tuple(strides))  # rows overlap: a Toeplitz-like view
    torch.save(sd, path)
    return path


def test_inception_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        Q.make_extractor("inception", PixelEmbedding(), tmp_path / "nowhere" / Q.INCEPTION_FILE)
    text = str(err.value)
    assert Q.INCEPTION_FILE in text and "nowhere" in text and Q.INCEPTION_URL in text
    # auto without the file: the audit's embedding, and a note on how to get Inception
    module, note = Q.make_extractor("auto", PixelEmbedding())
    assert isinstance(module, PixelEmbedding) and Q.INCEPTION_FILE in note


def test_inception_path_with_a_planted_weights_file(tmp_path, monkeypatch):
    from torch.hub import get_dir

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # this test's own torch cache: no other test sees the file
    target = Q.default_inception_path()
    assert str(target).startswith(get_dir())  # the torch cache, redirected to a temporary folder by conftest
    target.parent.mkdir(parents=True, exist_ok=True)
    plant_inception(target)
    assert target.stat().st_size < 2_000_000
    module, note = Q.make_extractor("auto", PixelEmbedding())
    assert isinstance(module, Q.InceptionFeatures) and note == "" and "inception-v3" in module.name
    imgs = np.stack([load_canonical(p, 64) for p in sorted(NIH.glob("images/*.png"))[:6]])
    f = embed(module, imgs, batch=3)
    assert f.shape == (6, 2048) and np.isfinite(f).all() and f.std(0).max() > 0
    c = Q.compare(f[:3], f[3:], repeats=2)
    assert c["dimension"] == 2048 and c["n"] == 3 and c["kid"] is not None and "singular" in c["note"]
    assert Q.compare(f[:3], f[:3].copy(), repeats=1)["fid"]["mean"] == pytest.approx(0, abs=1e-6)


# --- calibrated verdicts on hand-made sets -------------------------------------------------------------

class _Blocks(torch.nn.Module):
    """A second embedding: 8x8 block means (64 values), to exercise the worse-of-two rule."""

    num_features = 64
    name = "8x8 block means"

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x.float(), 8).flatten(1)


@pytest.fixture(scope="module")
def sets():
    """NIH sample images at 64 px split by patient: training pool, and two sets of new patients
    (A plays the synthetic images in the fresh-real case, B is the held-out reference); COVID images."""
    with open(NIH / "Data_Entry_2017.csv", newline="") as fh:
        patient = {r["Image Index"]: r["Patient ID"] for r in csv.DictReader(fh)}
    paths = sorted(p for p in NIH.glob("images/*.png") if p.name in patient)
    pats = sorted({patient[p.name] for p in paths})
    rng = np.random.default_rng(0)
    rng.shuffle(pats)
    group = {p: ("train" if k < len(pats) * 0.5 else "A" if k < len(pats) * 0.75 else "B") for k, p in enumerate(pats)}
    by = {g: np.stack([load_canonical(p, 64) for p in paths if group[patient[p.name]] == g][:240]) for g in ("train", "A", "B")}
    covid = np.stack([load_canonical(p, 64) for p in sorted(COVID.glob("images/*.jp*g"))[:150]])
    return by["train"], by["A"], by["B"], covid


def _run(syn, src, pool, held, ct, ch, inv=None):
    mods = {"pixels": PixelEmbedding(), "blocks": _Blocks()}
    feats = {}
    for name, m in mods.items():
        feats[name] = {"syn": embed(m, syn), "pool": embed(m, pool), "held": embed(m, held), "ct": embed(m, ct),
                       "ch": embed(m, ch), "inv": embed(m, inv) if inv is not None else None}
    meas = per_image(syn, src, pool, held, feats, ct, ch, inv, np.arange(len(syn)) if inv is not None else None, 5)
    return verdicts({e: evaluate(m, boots=500) for e, m in meas.items()})


def test_an_identical_copy_is_flagged_by_every_privacy_test(sets):
    train, _, held, covid = sets
    n = 40
    src = np.arange(n)
    copies = train[:n].copy()
    # the copies are also of the "COVID-19 images the translators saw", and their reverse translation is the source
    v = _run(copies, src, train, held, ct=train[:n], ch=covid[:30], inv=copies)
    assert [r["key"] for r in v] == [row["key"] for row in THRESHOLDS]
    assert all(r["flagged"] for r in v), [(r["key"], r["detail"]) for r in v if not r["flagged"]]
    link = next(r for r in v if r["key"] == "linkage")
    assert link["value"] == 1.0 and link["embedding"] in ("pixels", "blocks")
    assert "decided by the" in link["detail"] and "the worse of" in link["detail"]
    # the verdicts carry their row of the table, and say what was measured
    for r in v:
        assert r["threshold"] == TABLE[r["key"]]["threshold"] and r["verdict"] == TABLE[r["key"]]["flagged_words"]
        assert "MEMORISATION" not in r["verdict"]


def test_an_unrelated_image_set_passes(sets):
    train, _, held, covid = sets
    src = np.arange(60)  # claimed sources that the images do not come from
    v = _run(covid[:60], src, train, held, ct=covid[100:150], ch=covid[60:100], inv=covid[:60])
    assert not any(r["flagged"] for r in v), [(r["key"], r["detail"]) for r in v if r["flagged"]]
    assert all(r["verdict"] == TABLE[r["key"]]["passed_words"] for r in v)


def test_fresh_real_images_are_not_flagged(sets):
    """New real images of patients outside training (set A) against the training pool, calibrated on
    other new patients (set B): the same distribution, so no calibrated verdict may flag them."""
    train, fresh, held, covid = sets
    src = np.random.default_rng(1).integers(0, len(train), len(fresh))  # no real source: a random claim
    v = _run(fresh, src, train, held, ct=covid[:75], ch=covid[75:150], inv=fresh)
    assert not any(r["flagged"] for r in v), [(r["key"], r["detail"]) for r in v if r["flagged"]]
    by = {r["key"]: r for r in v}
    for key in ("dcr", "nndr", "authenticity"):  # the comparisons with new real images hold 0 in their interval
        assert by[key]["interval"][0] <= 0.05 and abs(by[key]["difference"]) < TABLE[key]["threshold"]


# --- the audit of a release ------------------------------------------------------------------------------

def test_audit_of_a_release_reaches_the_card(built, tmp_path):
    from cxrsynth.artifacts import ReleaseFolder
    from cxrsynth.pipeline import package_in
    from cxrsynth.stages.release.package import ReleaseConfig

    from .conftest import copy_workdir

    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)
    rel = built[1]
    # fidelity on, with a 4-epoch chest X-ray encoder and 100 resamples (instead of 20 and 300): what is
    # checked here is what reaches audit.json and the card, not the size of an interval
    res = audit_in(wd, rel, AuditConfig(embedding="pixels", exclude_closest=0.25, sample=None, bootstrap=100,
                                        quality_repeats=3, fidelity_encoder_epochs=4))
    assert res.data["counts"] == {"g_nc": 24, "g_pc": 24}
    assert res.data["sampled"]["g_nc"]["privacy"] == 24
    verdict_list = res.data["summary"]["verdicts"]
    assert [v["key"] for v in verdict_list] == [row["key"] for row in THRESHOLDS]
    assert res.data["thresholds"]["tests"][0]["key"] == "linkage"
    assert res.data["privacy"]["overall"]["pixels (32x32, z-scored)"]["inverse"]["n"] == 48  # the private reverse generators
    q = res.data["quality"]
    assert q["extractor"].startswith("pixels") and Q.INCEPTION_FILE in q["note"]
    assert q["synthetic_vs_real_covid"]["dimension"] == 1024 and q["synthetic_vs_real_covid"]["repeats"] == 3
    assert res.data["pools"]["heldout"] > 0 and res.data["pools"]["searched"] == res.data["pools"]["train"]
    rows = (wd / "audit" / "per_image.csv").read_text().splitlines()
    assert len(rows) == 1 + 48 and rows[0].startswith("id,config,linkage_rank,margin,ssim_source")
    excluded = (wd / "audit" / "exclude_ids.txt").read_text().split()
    assert len(excluded) == 12
    assert sorted(p.name for p in (wd / "audit" / "figures").glob("*.png")) == [
        "dcr.png", "nearest_pairs.png", "spectrum.png", "ssim.png"]
    assert "Audit: privacy and quality" in (wd / "audit" / "report_section.html").read_text()
    fid = res.data["fidelity"]  # fidelity against its baselines, per config too, with the encoder named by sha256
    assert set(fid["per_config"]) == {"g_nc", "g_pc"} and fid["overall"]["n"]["synthetic"] == 48
    assert fid["feature_space_notes"]["cxr_encoder"]["sha256"] == sha256_file(WorkLayout(wd).cxr_encoder)
    assert "Fidelity, against baselines" in (wd / "audit" / "report_section.html").read_text()
    # a release made after the audit can leave out the images closest to their sources; it holds other
    # images than the audited one, so its card does not carry that audit (the stamp differs) until it is
    # audited itself
    out = tmp_path / "rel2"
    m = package_in(wd, ReleaseFolder(out / "covid-cxr-synth"),
                   ReleaseConfig(exclude=str(wd / "audit" / "exclude_ids.txt"))).manifest()
    assert m["counts"]["all"] == 36 and m["filtered"]["removed"] == 12
    assert res.data["audited_release"]["data_sha256"] == json.loads((rel / "manifest.json").read_text())["data_sha256"]
    assert res.data["audited_release"]["data_sha256"] != m["data_sha256"]
    card = (out / "covid-cxr-synth" / "README.md").read_text()
    assert "Not yet audited" in card and "12 images were removed after the audit" in card
    again = audit_in(wd, out / "covid-cxr-synth", AuditConfig(embedding="pixels", sample=None, bootstrap=100,
                                                             quality_repeats=3, fidelity_encoder_epochs=4),
                     out_dir=tmp_path / "audit2", externals={"hannover": str(COVID.parent / "covid-19-image-repository")})
    from cxrsynth.stages.release.describe import attach_audit

    # the "another hospital" baseline (--external): measured once, named in the sentence the card carries
    ext = again.data["fidelity"]["external_real"]["hannover"]
    assert ext["n"] > 200 and ext["probe_real_vs_external"]["auroc"] > 0.8
    assert "another collection (hannover)" in again.data["summary"]["fidelity"]
    assert "another collection (hannover, " in (tmp_path / "audit2" / "report_section.html").read_text()

    m = attach_audit(out / "covid-cxr-synth", tmp_path / "audit2" / "audit.json")
    card = (out / "covid-cxr-synth" / "README.md").read_text()
    assert f"**Fidelity.** {again.data['summary']['fidelity']}" in card and "untranslated" in again.data["summary"]["fidelity"]
    # two training steps make images a probe tells from real COVID-19 at once: the distance verdicts say so
    assert again.data["summary"]["caveat"].startswith("Distances to training images are not comparable")
    assert f"  - *{again.data['summary']['caveat']}*" in card
    assert sum(again.data["counts"].values()) == 36
    assert "Not yet audited" not in card and "12 images were removed after the audit" in card
    for v in again.data["summary"]["verdicts"]:  # every verdict reaches the card by name, with the embedding that decided it
        assert v["name"] in card and (v["embedding"] is None or v["embedding"] in card)
    from cxrsynth.stages.release.verify import verify

    assert verify(out / "covid-cxr-synth") == []
    ids = {json.loads(x)["id"] for x in (out / "covid-cxr-synth" / "provenance.jsonl").read_text().splitlines()}
    assert not ids & set(excluded)


def test_audit_samples_and_says_so(built, tmp_path):
    wd, rel = built[0], built[1]
    cfg = AuditConfig(embedding="pixels", sample=10, pool=30, heldout=20, inverse_sample=4, quality_sample=12, fidelity=False,
                      quality_repeats=2, bootstrap=200)
    res = audit_in(wd, rel, cfg, out_dir=tmp_path / "a")
    assert res.data["sampled"] == {c: {"privacy": 10, "inverse": 4, "quality": 12} for c in ("g_nc", "g_pc")}
    assert res.data["pools"]["searched"] == 30 and res.data["pools"]["heldout"] <= 20
    link = res.data["summary"]["verdicts"][0]
    assert link["n"] == 20 and "20 images sampled at random from 48" in link["detail"]
    assert "a seeded random sample of the 48" in res.data["summary"]["text"]
    # label-matched references: each config against held-out images of its sources' label, said in the text
    refs = res.data["pools"]["heldout_reference"]
    assert {c: r["label"] for c, r in refs.items()} == {"g_nc": "normal", "g_pc": "pneumonia"}
    assert sum(r["n"] for r in refs.values()) == res.data["pools"]["heldout"]
    assert f"g_nc against {refs['g_nc']['n']:,} held-out normal images" in res.data["summary"]["text"]
    assert res.data["privacy"]["overall"]["pixels (32x32, z-scored)"]["dcr"]["reference_sizes"] == {
        c: r["n"] for c, r in refs.items()}
    assert res.data["quality"]["per_config"]["g_nc"]["n_fake"] == 12
    again = audit_in(wd, rel, cfg, out_dir=tmp_path / "b")  # seeded: the same numbers
    assert again.data["summary"]["verdicts"] == res.data["summary"]["verdicts"]
    with pytest.raises(ConfigError, match="sample=null"):
        audit_in(wd, rel, AuditConfig(embedding="pixels", sample=10, exclude_closest=0.1, fidelity=False), out_dir=tmp_path / "c")


def test_real_images_are_decoded_once_while_the_file_is_unchanged(tmp_path, monkeypatch):
    """The audit's decode memo (measure/decoded.py): one decode per file and size, read-only arrays, a file
    replaced on disk decoded again, a missing one the usual clear error, and the oldest entries let go."""
    import os

    from PIL import Image

    from cxrsynth.core.errors import BadInputError
    from cxrsynth.measure import decoded

    src = next(NIH.glob("images/*.png"))
    path = tmp_path / "x.png"
    path.write_bytes(src.read_bytes())
    decoded.clear()
    calls = []
    real = decoded.load_canonical
    monkeypatch.setattr(decoded, "load_canonical", lambda p, s: (calls.append((str(p), s)), real(p, s))[1])
    a = decoded.canonical(path, 32)
    assert np.array_equal(a, load_canonical(path, 32)) and not a.flags.writeable
    assert decoded.canonical(path, 32) is a and len(calls) == 1  # the second read is the memo's
    assert decoded.canonical(path, 16).shape == (16, 16) and len(calls) == 2  # another size, another decode
    Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 5, (40, 1))).save(path)  # replaced: another file
    os.utime(path, ns=(1, 1))
    assert not np.array_equal(decoded.canonical(path, 32), a) and len(calls) == 3
    with pytest.raises(BadInputError, match="missing"):
        decoded.canonical(tmp_path / "absent.png", 32)
    monkeypatch.setattr(decoded, "MAX_BYTES", 2 * 32 * 32)  # room for two 32 px images: the oldest two entries go
    decoded.canonical(src, 32)
    assert [k[0] for k in decoded._cache] == [str(path), str(src)] and decoded._held[0] == 2 * 32 * 32
    decoded.clear()
