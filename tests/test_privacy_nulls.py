"""Nulls that are nulls (issue 20): each privacy verdict right on data whose answer is known.

- Linkage: a top-1 rate 6x chance is "linkable above chance at a low rate", 100x chance at a pool of
  5,000 is LINKABLE (the old +2-point margin passed both), chance is not linkable; chance is where the
  sources are (shuffled within config), not 1 / pool size.
- SSIM to source: the null is measured (new real images, random pseudo-sources, the identical
  shortlist procedure). On unrelated pairs it is far below 1 / 11 and the test holds its level; a
  near-copy set and a partial-resemblance set that 1 / 11 calls chance are flagged.
- References are label-matched per stratum (config); the off-manifold caveat; one resampling path to
  the probe's 32 px.

Real NIH sample images at 32 px, split by patient, keep the SSIM tests to seconds.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from cxrsynth.stages.audit import privacy as P
from cxrsynth.stages.audit.embed import PixelEmbedding, embed
from cxrsynth.stages.audit.verdicts import TABLE, THRESHOLDS, evaluate, off_manifold, per_image, verdicts
from cxrsynth.data.images import decode, encode_png, load_canonical

from .conftest import COVID, NIH

SIDE = 32
N = 200  # "synthetic" images made from the first N new images; the other new images are the reference


def _only(key: str, test: dict) -> dict:
    """``verdicts``' input with one test measured and the others not."""
    return {"pixels": {row["key"]: (test if row["key"] == key else {"n": 0, "value": None}) for row in THRESHOLDS}}


def _linkage_verdict(credit: np.ndarray, pool: int) -> dict:
    return verdicts(_only("linkage", P.chance_test(credit, 1 / pool)))[0]


# --- linkage ---------------------------------------------------------------------------------------

def test_the_sample_linkage_rate_reads_linkable_above_chance_at_a_low_rate():
    # the committed sample audit: 5 of 634 images (0.79%) found their source first among 775 (chance 0.13%)
    v = _linkage_verdict(np.r_[np.ones(5), np.zeros(629)], 775)
    assert v["p_value"] == pytest.approx(0.0015, abs=1e-4) and v["lift"] == pytest.approx(6.1, abs=0.05)
    assert not v["flagged"] and v["significant"]
    assert v["verdict"] == "linkable above chance at a low rate (0.8%, 6.1x chance, p = 0.0015)"


def test_linkage_margin_is_relative_to_chance():
    # release scale: 2% top-1 in a pool of 5,000 is 100x chance but under +2 points: LINKABLE now
    v = _linkage_verdict(np.r_[np.ones(20), np.zeros(980)], 5000)
    assert v["difference"] < 0.02 and v["flagged"] and v["verdict"] == TABLE["linkage"]["flagged_words"]
    # at chance: not linkable
    v = _linkage_verdict(np.r_[np.ones(1), np.zeros(999)], 1000)
    assert not v["significant"] and v["verdict"] == TABLE["linkage"]["passed_words"]


def test_a_constructed_embedding_linked_6x_chance_is_linkable_above_chance():
    """1,000 images in a pool of 1,000: 5 lie next to their sources, the rest are unrelated points."""
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(1000, 16))
    src = rng.permutation(1000)
    syn = rng.normal(size=(1000, 16))
    syn[:5] = pool[src[:5]] + 0.01 * rng.normal(size=(5, 16))
    lk = P.linkage(syn, pool, src)
    v = _linkage_verdict(lk["top1_credit"], 1000)
    assert 5 <= v["lift"] < 10 and v["p_value"] < 0.01
    assert v["verdict"].startswith("linkable above chance at a low rate (") and "x chance, p = " in v["verdict"]


def test_linkage_chance_is_where_the_sources_are_not_one_over_the_pool():
    """Images that lie among 200 "normal" pool images (of 2,000) but carry nothing of their own sources
    (each normal is the source of 10 of them): they find their source first 1 in 200 times, 10x
    1 / pool size, yet no more often than a shuffled source would."""
    rng = np.random.default_rng(5)
    pool = np.r_[rng.normal(size=(200, 8)), rng.normal(size=(1800, 8)) + 20]
    src = np.repeat(np.arange(200), 10)
    syn = rng.normal(size=(2000, 8))
    lk = P.linkage(syn, pool, src)
    naive = verdicts(_only("linkage", P.chance_test(lk["top1_credit"], 1 / 2000)))[0]
    assert naive["lift"] >= 5 and naive["significant"]  # what 1 / pool size would say
    shuffled = P.shuffled_chance(lk["nearest"], lk["source"])
    assert shuffled.mean() == pytest.approx(1 / 200)
    v = verdicts(_only("linkage", P.chance_test(lk["top1_credit"], shuffled.mean())))[0]
    assert not v["significant"] and v["verdict"] == TABLE["linkage"]["passed_words"]
    # each image linked to its source: significant against the shuffled chance too
    syn[:40] = pool[src[:40]] + 0.01
    lk = P.linkage(syn, pool, src)
    v = verdicts(_only("linkage", P.chance_test(lk["top1_credit"], P.shuffled_chance(lk["nearest"], lk["source"]).mean())))[0]
    assert v["significant"]


# --- the calibrated SSIM null ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nih():
    """NIH sample images at 32 px, split by patient: a training pool of 150 and 400 new images."""
    with open(NIH / "Data_Entry_2017.csv", newline="") as fh:
        patient = {r["Image Index"]: r["Patient ID"] for r in csv.DictReader(fh)}
    paths = sorted(p for p in NIH.glob("images/*.png") if p.name in patient)
    pats = sorted({patient[p.name] for p in paths})
    np.random.default_rng(0).shuffle(pats)
    train_pats = set(pats[: len(pats) // 2])
    train = [p for p in paths if patient[p.name] in train_pats][:150]
    fresh = [p for p in paths if patient[p.name] not in train_pats][:400]
    load = lambda ps: np.stack([load_canonical(p, SIDE) for p in ps])
    pool, new = load(train), load(fresh)
    m = PixelEmbedding()
    return pool, embed(m, pool), new, embed(m, new)


def test_ssim_null_is_far_below_one_in_eleven_and_holds_its_level(nih):
    """Unrelated pairs (new real images, random pseudo-sources) split at random into a "synthetic" and a
    reference half, 200 times: the exact test rejects at most about its nominal 1%."""
    pool, f_pool, new, f_new = nih
    rng = np.random.default_rng(1)
    draws = 4
    wins = np.stack([P.source_similarity(new, pool, f_new, f_pool, rng.integers(0, len(pool), len(new)), 10)["win"]
                     for _ in range(draws)], 1)
    assert wins.mean() < 0.5 / 11  # the source competes with the image's 10 nearest: 1 / 11 is not the null
    rejected, diffs = 0, []
    for _ in range(200):
        order = rng.permutation(len(new))
        pick = wins[np.arange(len(new)), rng.integers(0, draws, len(new))]
        a, b = pick[order[:N]], pick[order[N:]]
        rejected += P.exact_two_proportion(a, b) < 0.01
        diffs.append(a.mean() - b.mean())
    assert rejected <= 4 and abs(np.mean(diffs)) < 0.005


def _similarity_verdict(syn, src, nih, held_pseudo_seed=2):
    pool, f_pool, new, f_new = nih
    held = new[N:]
    m = PixelEmbedding()
    feats = {"pixels": {"syn": embed(m, syn), "pool": f_pool, "held": f_new[N:]}}
    refs = {"all": {"held": np.arange(len(held)),
                    "pseudo_source": np.random.default_rng(held_pseudo_seed).integers(0, len(pool), len(held))}}
    meas = per_image(syn, src, pool, held, feats, shortlist=10, refs=refs)
    return next(v for v in verdicts({"pixels": evaluate(meas["pixels"], boots=200)}) if v["key"] == "source_similarity")


@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_near_copies_and_partial_resemblance_are_flagged_against_the_null(nih, alpha):
    """Synthetic = alpha x its source + (1 - alpha) x an unrelated new image. alpha 1: a copy; alpha 0.25:
    the source wins fewer than 1 / 11 of the shortlists, so the old reference called it chance."""
    pool, _, new, _ = nih
    rng = np.random.default_rng(3)
    src = rng.integers(0, len(pool), N)
    syn = np.clip(alpha * pool[src].astype(float) + (1 - alpha) * new[:N].astype(float), 0, 255).astype(np.uint8)
    v = _similarity_verdict(syn, src, nih)
    assert v["significant"] and v["reference"].startswith("the calibrated null")
    assert v["value"] > 10 * v["reference_value"] or v["difference"] >= 0.05
    if alpha == 1.0:
        assert v["flagged"] and v["verdict"] == "RESEMBLES ITS SOURCE" and v["value"] == 1.0
    else:
        old = P.chance_test(np.full(N, v["value"]), 1 / 11)  # the same share against the old 1 / 11
        assert v["value"] <= 1 / 11 and old["p_value"] > 0.5 and v["p_value"] < 0.01


def test_unrelated_images_are_not_flagged_against_the_null(nih):
    pool, _, new, _ = nih
    src = np.random.default_rng(4).integers(0, len(pool), N)
    v = _similarity_verdict(new[:N], src, nih)
    assert not v["significant"] and v["verdict"] == TABLE["source_similarity"]["passed_words"]


# --- label-matched references -------------------------------------------------------------------------

def test_each_stratum_is_held_against_its_own_label(nih):
    """New NIH images as "synthetic" ones of stratum normal: against new NIH images they are no closer
    to training than new images are; against COVID-19 figures (a mixed-up reference) they would be."""
    pool, f_pool, new, f_new = nih
    covid = np.stack([load_canonical(p, SIDE) for p in sorted(COVID.glob("images/*.jp*g"))[:100]])
    f_cov = embed(PixelEmbedding(), covid)
    dcr = lambda f: P.nearest(f, f_pool, 1)[0][:, 0]
    syn, held = dcr(f_new[:N]), dcr(f_new[N:])
    strata = np.array(["normal"] * N)
    matched = P.tail_difference(syn, {"normal": held}, 5, 300, 0, strata)
    mixed = P.tail_difference(syn, {"normal": dcr(f_cov)}, 5, 300, 0, strata)
    assert matched["interval"][0] <= 0 and abs(matched["difference"]) < 0.05
    assert mixed["interval"][0] > 0
    # two strata: each image against its own stratum's reference, weighted by the synthetic counts
    both = P.tail_difference(np.r_[syn, dcr(f_cov[:50])], {"normal": held, "covid": dcr(f_cov[50:])}, 5, 300, 0,
                             np.array(["normal"] * N + ["covid"] * 50))
    assert both["interval"][0] <= 0 and len(both["cutoff"]) == 2 and both["n_reference"] == len(held) + 50


def test_stratified_exact_test_matches_fisher_on_one_stratum():
    from scipy.stats import fisher_exact

    a, b = np.r_[np.ones(7), np.zeros(93)], np.r_[np.ones(1), np.zeros(149)]
    assert P.exact_two_proportion(a, b) == pytest.approx(fisher_exact([[7, 93], [1, 149]], "greater")[1])
    # strata with the same shares add evidence
    two = P.exact_two_proportion(np.r_[a, a], {"x": b, "y": b}, np.array(["x"] * 100 + ["y"] * 100))
    assert two < P.exact_two_proportion(a, b)


# --- off the manifold -------------------------------------------------------------------------------

def _part(auc, ci, halves_ci):
    kid = lambda m: {"mean": m}
    return {"probes": {"real_vs_synthetic": {"auroc": auc, "auroc_ci95": ci},
                       "real_halves": {"auroc": sum(halves_ci) / 2, "auroc_ci95": halves_ci}},
            "kid": {"cxr_encoder": {"synthetic_vs_heldout": kid(0.41), "floor_train_vs_heldout": kid(0.03)}}}


def test_off_manifold_sentence_only_when_a_probe_tells_the_images_apart():
    s = off_manifold(_part(0.95, [0.92, 0.98], [0.45, 0.65]))
    assert s.startswith("Distances to training images are not comparable with real-to-real distances here")
    assert "from real COVID-19 at AUROC 0.95 [0.92, 0.98]" in s and "0.41" in s and "0.03" in s and "real real" not in s
    assert off_manifold(_part(0.6, [0.52, 0.68], [0.45, 0.65])) is None
    assert off_manifold(_part(0.8, [0.72, 0.88], [0.6, 0.75])) is None  # not beyond two halves of real
    assert off_manifold(None) is None
    # a translator that fools a probe against the training images but not against held-out real ones:
    # the held-out probe decides, and the sentence says which
    part = _part(0.6, [0.52, 0.68], [0.45, 0.65])
    part["probes"]["heldout_vs_synthetic"] = {"auroc": 0.9, "auroc_ci95": [0.8, 0.97]}
    assert "from held-out real COVID-19 at AUROC 0.90 [0.80, 0.97]" in off_manifold(part)
    part["probes"]["heldout_vs_synthetic"] = {"auroc": 0.5, "auroc_ci95": [0.38, 0.62]}
    assert off_manifold(part) is None
    by = {"pixels": {row["key"]: {"n": 0, "value": None} for row in THRESHOLDS}}
    for key in ("dcr", "authenticity", "linkage"):
        by["pixels"][key] = {"n": 10, "value": 0.0, "reference": 0.05, "difference": -0.05, "interval": [-0.1, 0.0]}
    by["pixels"]["linkage"]["p_value"] = 1.0
    records = verdicts(by, caveat=s)
    v = {r["key"]: r for r in records}
    assert v["dcr"]["caveat"] == v["authenticity"]["caveat"] == s and "caveat" not in v["linkage"]
    # the card says it once, right after the distance verdicts
    from cxrsynth.stages.release.card import _audit_section

    card = _audit_section({"text": "Audited.", "verdicts": records}).splitlines()
    assert sum(s in line for line in card) == 1
    at = next(k for k, line in enumerate(card) if s in line)
    assert TABLE["authenticity"]["name"] in card[at - 1] and TABLE["copying"]["name"] in card[at + 1]


# --- the probe's one resampling path -------------------------------------------------------------------

def test_real_and_synthetic_reach_the_probe_by_one_path():
    """A real image and the same image stored as a 128 px release PNG give the probe identical inputs."""
    from cxrsynth.stages.benchmark.controls import _pil_pixels, _pixels

    paths = [str(p) for p in sorted(NIH.glob("images/*.png"))[:6]]
    pngs = [Image.open(io.BytesIO(encode_png(decode(p, 128).pixels))) for p in paths]
    syn, size = _pil_pixels(pngs)
    assert size == 128 and np.array_equal(_pixels(paths, size), syn)
    # before: real images decoded straight to 32 px, synthetic ones shrunk from 128 px: not the same input
    direct = np.stack([decode(p, SIDE).pixels.astype(np.float32).ravel() / 255 for p in paths])
    assert not np.array_equal(direct, syn)
