"""The audit's measures on hand-checked cases (an identical copy is flagged, an unrelated image is not),
and the audit of a release built from the sample data, down to the dataset card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cxrsynth.audit import privacy as P
from cxrsynth.audit import quality as Q
from cxrsynth.audit.embed import PixelEmbedding, embed
from cxrsynth.audit.run import AuditConfig, audit, verdicts
from cxrsynth.images import load_canonical

from .conftest import COVID, NIH


def test_measures_on_hand_computed_points():
    syn, pool = np.array([[0.0, 0.0]]), np.array([[0.0, 0.1], [0.0, 1.0], [5.0, 5.0]])
    lk = P.linkage(syn, pool, np.array([1]))
    assert lk["ranks"].tolist() == [2] and lk["top1"] == 0 and lk["top5"] == 1 and lk["mrr"] == 0.5
    assert lk["chance_top1"] == pytest.approx(1 / 3) and lk["chance_mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    d = P.dcr(np.array([[0.25, 0.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[3.0, 0.0]]))
    assert d["dcr"].tolist() == [0.25] and d["nndr"][0] == pytest.approx(0.25 / 0.75)
    assert d["dcr_heldout"].tolist() == [2.0]
    assert d["authentic"].tolist() == [False]  # 0.25 < 1, the distance from r* = (0, 0) to its neighbour
    far = P.dcr(np.array([[0.0, 2.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[3.0, 0.0]]))
    assert far["authentic"].tolist() == [True]  # 2 > 1
    # one synthetic point near the training image, one near the held-out one: half closer to training
    assert P.closer_to_training(np.array([[1.0, 0.0], [9.0, 0.0]]), np.array([[0.0, 0.0]]), np.array([[10.0, 0.0]])) == 0.5
    st = Q.pixel_stats(np.stack([np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)]))
    assert st["mean"] == 0.5 and st["std"] == 0.5 and st["per_image_mean_std"] == 0.5
    assert st["histogram16"][0] == 0.5 and st["histogram16"][-1] == 0.5
    a = load_canonical(next(NIH.glob("images/*.png")), 64)
    assert P.ssim(a, a) == 1.0 and P.psnr(a, a) == float("inf")
    x = np.random.default_rng(0).normal(size=(40, 3))
    same = Q.prdc(x, x, k=5)
    assert same["precision"] == 1 and same["recall"] == 1 and same["coverage"] == 1
    shifted = Q.prdc(x, x + 100, k=5)
    assert shifted["precision"] == 0 and shifted["coverage"] == 0


class _MeanFeature(torch.nn.Module):
    """A 1-feature embedding (the image's mean), so that FID can be computed by hand."""

    num_features = 1
    name = "mean intensity"

    def forward(self, x):
        return x.float().flatten(1).mean(1, keepdim=True)


def test_fid_and_kid_by_hand():
    v = np.array([10, 20, 30, 40, 50], dtype=float)
    w = np.array([100, 120, 140, 160, 180], dtype=float)
    a = np.stack([np.full((16, 16), x, np.uint8) for x in v])
    b = np.stack([np.full((16, 16), x, np.uint8) for x in w])
    got = Q.fid_kid(a, b, _MeanFeature())
    # 1-D Frechet distance of two Gaussians, sample variances (n - 1), features in [0, 1]
    m1, m2, s1, s2 = v.mean() / 255, w.mean() / 255, v.var(ddof=1) / 255**2, w.var(ddof=1) / 255**2
    assert got["fid"] == pytest.approx((m1 - m2) ** 2 + s1 + s2 - 2 * np.sqrt(s1 * s2), rel=1e-3)
    same = Q.fid_kid(a, a.copy(), _MeanFeature())
    # KID is unbiased: about 0 for one distribution (subsets of 4 of 5 images make it noisy), clearly
    # positive for two different ones
    assert abs(same["fid"]) < 1e-6 and abs(same["kid_mean"]) < 0.02
    assert got["kid_mean"] > 5 * abs(same["kid_mean"]) and got["kid_mean"] > 0.05
    assert got["extractor"] == "mean intensity" and got["kid_subset_size"] == 4


@pytest.fixture(scope="module")
def sets():
    nih = [load_canonical(p, 64) for p in sorted(NIH.glob("images/*.png"))[:40]]
    covid = [load_canonical(p, 64) for p in sorted(COVID.glob("images/*.jp*g"))[:10]]
    train, held = np.stack(nih[:30]), np.stack(nih[30:])
    emb = PixelEmbedding()
    return train, held, np.stack(covid), emb, embed(emb, train), embed(emb, held)


def _summary(syn, src, train, held, emb, e_train, e_held):
    e_syn = embed(emb, syn)
    link = P.linkage(e_syn, e_train, src)
    d = P.dcr(e_syn, e_train, e_held)
    sim = P.source_similarity(syn, train, e_syn, e_train, src, 5)
    copy_ssim, copy_dcr = P.max_ssim_against(syn, train[:5], e_syn, e_train[:5], 5)
    from cxrsynth.audit.run import _summarise

    return _summarise(link, d, sim, copy_ssim, copy_dcr, None, P.closer_to_training(e_syn, e_train, e_held))


def test_an_identical_copy_is_flagged(sets):
    train, held, _, emb, e_train, e_held = sets
    src = np.arange(10)
    s = _summary(train[:10].copy(), src, train, held, emb, e_train, e_held)
    assert s["linkage"]["top1"] == 1.0 and s["similarity"]["ssim_source_median"] == 1.0
    assert s["dcr"]["share_below_heldout_p5"] == 1.0 and s["dcr"]["authentic_share"] == 0.0
    assert s["copying"]["max_ssim"] == 1.0  # the first five are copies of the "covid training" references
    flagged = {v["name"] for v in verdicts(s) if v["flagged"]}
    assert flagged == {"source linkage", "similarity to own source", "distance to closest record",
                       "authenticity (Alaa et al. 2022)", "copying of COVID-19 training images"}


def test_an_unrelated_image_is_not_flagged(sets):
    train, held, covid, emb, e_train, e_held = sets
    src = np.arange(10)  # claimed sources that the images do not come from
    s = _summary(covid, src, train, held, emb, e_train, e_held)
    assert s["linkage"]["top1"] <= 0.1 and s["similarity"]["ssim_source_median"] < 0.6
    assert s["copying"]["max_ssim"] < 0.9
    assert not any(v["flagged"] for v in verdicts(s))


def test_audit_of_a_release_reaches_the_card(built, tmp_path):
    from cxrsynth.release.package import ReleaseConfig, build

    from .conftest import copy_workdir

    wd = copy_workdir(built[0], tmp_path / "wd", keep_generated=True)
    rel = built[1]
    res = audit(rel, wd, AuditConfig(embedding="pixels", exclude_closest=0.25))
    assert res["counts"] == {"g_nc": 24, "g_pc": 24}
    assert len(res["summary"]["verdicts"]) == 6
    assert res["privacy"]["overall"]["inverse"]["ssim_median"] is not None  # the private reverse generators were used
    assert res["quality"]["synthetic_vs_real_covid"]["extractor"].startswith("pixels")
    rows = (wd / "audit" / "per_image.csv").read_text().splitlines()
    assert len(rows) == 1 + 48 and rows[0].startswith("id,config,linkage_rank,ssim_source")
    excluded = (wd / "audit" / "exclude_ids.txt").read_text().split()
    assert len(excluded) == 12
    assert sorted(p.name for p in (wd / "audit" / "figures").glob("*.png")) == ["dcr.png", "nearest_pairs.png", "ssim.png"]
    assert "Audit: privacy and quality" in (wd / "audit" / "report_section.html").read_text()
    # a release made after the audit can leave out the images closest to their sources; it holds other
    # images than the audited one, so its card does not carry that audit (the stamp differs) until it is
    # audited itself
    out = tmp_path / "rel2"
    m = build(wd, out / "covid-cxr-synth", out / "covid-cxr-synth.private",
              ReleaseConfig(exclude=str(wd / "audit" / "exclude_ids.txt")))
    assert m["counts"]["all"] == 36 and m["filtered"]["removed"] == 12
    assert res["audited_release"]["data_sha256"] == json.loads((rel / "manifest.json").read_text())["data_sha256"]
    assert res["audited_release"]["data_sha256"] != m["data_sha256"]
    card = (out / "covid-cxr-synth" / "README.md").read_text()
    assert "Not yet audited" in card and "12 images were removed after the audit" in card
    again = audit(out / "covid-cxr-synth", wd, AuditConfig(embedding="pixels"), out_dir=tmp_path / "audit2")
    from cxrsynth.release.package import attach_audit

    m = attach_audit(wd, out / "covid-cxr-synth", tmp_path / "audit2" / "audit.json")
    card = (out / "covid-cxr-synth" / "README.md").read_text()
    assert sum(again["counts"].values()) == 36
    assert "Not yet audited" not in card and "source linkage" in card and "12 images were removed after the audit" in card
    from cxrsynth.release.verify import verify

    assert verify(out / "covid-cxr-synth") == []
    ids = {json.loads(x)["id"] for x in (out / "covid-cxr-synth" / "provenance.jsonl").read_text().splitlines()}
    assert not ids & set(excluded)
