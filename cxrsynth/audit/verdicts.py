"""From per-image measures to calibrated verdicts.

Every privacy verdict compares a statistic of the synthetic images with a reference: the same statistic
for new real images (a held-out set, patient-disjoint from training), or a stated chance rate. A test
is flagged when the difference is at least its threshold *and* it is significant (binomial test against
chance, p < ``ALPHA``; or a 95% bootstrap interval above 0). Each test is run with every embedding
given (pixels, classifier features) and the verdict is taken on the worse one, which the record names.

``THRESHOLDS`` is the one table of data (name, statistic, reference, threshold, direction, words) that
the audit applies and writes into ``audit.json``; each verdict record repeats its row, so the dataset
card renders the records as they are.
"""

from __future__ import annotations

import numpy as np

from . import privacy as P

ALPHA = 0.01  # binomial tests against chance: one-sided p below this

THRESHOLDS: tuple[dict, ...] = (
    {"key": "linkage", "name": "own source found by nearest-neighbour search more often than chance",
     "statistic": "top-1 linkage rate: share of images whose nearest real image in the search pool is their own "
                  "source (ties split evenly)",
     "reference": "chance, 1 / pool size", "test": "binomial", "threshold": 0.02, "direction": "higher is worse",
     "flagged_words": "LINKABLE", "passed_words": "not linkable beyond chance by this test",
     "unit": "share"},
    {"key": "source_similarity", "name": "more similar (SSIM) to its own source than to similar real images, "
                                         "more often than chance",
     "statistic": "share of images whose most similar (SSIM) image, among the own source and its nearest other "
                  "real images by embedding, is the own source (ties split evenly)",
     "reference": "chance, 1 / (shortlist + 1)", "test": "binomial", "threshold": 0.05,
     "direction": "higher is worse", "flagged_words": "RESEMBLES ITS SOURCE",
     "passed_words": "no more similar to its source than chance", "unit": "share"},
    {"key": "dcr", "name": "closer to a training image than new real images are",
     "statistic": "share of images closer to their nearest training image (distance to closest record) than the "
                  "closest 5% of new real images are",
     "reference": "the same share for new real images (held-out, patient-disjoint), about 5%", "test": "bootstrap",
     "threshold": 0.05, "direction": "higher is worse", "flagged_words": "CLOSER TO TRAINING IMAGES THAN NEW IMAGES",
     "passed_words": "no closer to training images than new real images", "unit": "share"},
    {"key": "nndr", "name": "closer to one training image, relative to the next, than new real images are",
     "statistic": "share of images whose nearest-neighbour distance ratio (nearest / second nearest training "
                  "image) is below the 5th percentile of new real images",
     "reference": "the same share for new real images (held-out, patient-disjoint), about 5%", "test": "bootstrap",
     "threshold": 0.05, "direction": "higher is worse", "flagged_words": "SINGLED OUT BY ONE TRAINING IMAGE",
     "passed_words": "no more singled out by one training image than new real images", "unit": "share"},
    {"key": "authenticity", "name": "less often authentic (Alaa et al. 2022) than new real images",
     "statistic": "share of images not authentic: closer to their nearest training image r* than r* is to its own "
                  "nearest training image",
     "reference": "the same share for new real images (held-out, patient-disjoint)", "test": "bootstrap",
     "threshold": 0.10, "direction": "higher is worse", "flagged_words": "LESS AUTHENTIC THAN NEW IMAGES",
     "passed_words": "as authentic as new real images", "unit": "share"},
    {"key": "copying", "name": "near copies (SSIM > 0.95) of the COVID-19 images the translators saw",
     "statistic": "share of images with SSIM above 0.95 to a COVID-19 image the translators trained on "
                  "(nearest ones by embedding compared)",
     "reference": "the same share for new real COVID-19 images (held-out), or none when there are none",
     "test": "bootstrap", "threshold": 0.01, "direction": "higher is worse", "flagged_words": "NEAR COPIES FOUND",
     "passed_words": "no more near copies than among new real images", "unit": "share"},
    {"key": "inverse", "name": "reverse translation leads back to its source more often than chance",
     "statistic": "share of images whose reverse translation (private reverse generator) is most similar (SSIM) "
                  "to the own source among the own source and its nearest other real images (ties split evenly)",
     "reference": "chance, 1 / (shortlist + 1)", "test": "binomial", "threshold": 0.05,
     "direction": "higher is worse", "flagged_words": "SOURCE RECOVERABLE",
     "passed_words": "source not recovered beyond chance", "unit": "share"},
)
TABLE = {row["key"]: row for row in THRESHOLDS}


# --- per-image measures ----------------------------------------------------------------------------------

def per_image(syn_px: np.ndarray, src: np.ndarray, pool_px: np.ndarray, held_px: np.ndarray, feats: dict,
              ct_px: np.ndarray | None = None, ch_px: np.ndarray | None = None, inv_px: np.ndarray | None = None,
              inv_index: np.ndarray | None = None, shortlist: int = 10) -> dict:
    """Every per-image measure, per embedding.

    ``feats[key]`` holds the embeddings ``syn``, ``pool``, ``held`` (and ``ct``, ``ch``, ``inv`` where those
    images are given): synthetic images, the search pool (training images; ``pool_px[src[i]]`` is the
    source of ``syn_px[i]``), new real images, the COVID-19 images the translators saw, new real COVID-19
    images, and the reverse translations of ``syn_px[inv_index]``.
    """
    out = {}
    for key, f in feats.items():
        radius = P.pool_radius(f["pool"])
        m: dict = {"linkage": P.linkage(f["syn"], f["pool"], src), "syn": P.closeness(f["syn"], f["pool"], radius),
                   "held": P.closeness(f["held"], f["pool"], radius),
                   "similarity": P.source_similarity(syn_px, pool_px, f["syn"], f["pool"], src, shortlist)}
        if ct_px is not None and len(ct_px):
            m["copy_syn"] = P.max_ssim_against(syn_px, ct_px, f["syn"], f["ct"], shortlist)
            m["copy_held"] = (P.max_ssim_against(ch_px, ct_px, f["ch"], f["ct"], shortlist)
                              if ch_px is not None and len(ch_px) else np.zeros(0))
        if inv_px is not None:
            m["inverse"] = P.source_similarity(inv_px, pool_px, f["inv"], f["pool"], src[inv_index], shortlist)
            m["inverse_index"] = np.asarray(inv_index)
        out[key] = m
    return out


def _select(m: dict, mask: np.ndarray | None) -> dict:
    """The measures of the synthetic images in ``mask`` (the references are kept whole)."""
    if mask is None:
        return m
    mask = np.asarray(mask, bool)
    sel = dict(m)
    lk = m["linkage"]
    sel["linkage"] = P.rank_summary(lk["less"][mask], lk["ties"][mask], lk["pool_size"])
    sel["syn"] = {k: v[mask] for k, v in m["syn"].items()}
    sel["similarity"] = {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in m["similarity"].items()}
    if "copy_syn" in m:
        sel["copy_syn"] = m["copy_syn"][mask]
    if "inverse" in m:
        keep = mask[m["inverse_index"]]
        sel["inverse"] = {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in m["inverse"].items()}
    return sel


def evaluate(m: dict, boots: int = 2000, seed: int = 0) -> dict:
    """Each table test on one embedding's measures: value, reference, difference, 95% interval, p, n."""
    lk = m["linkage"]
    link = P.chance_test(lk["top1_credit"], lk["chance_top1"])
    out = {"linkage": {**link, "pool_size": lk["pool_size"], "top5": lk["top5"], "mrr": lk["mrr"],
                       "chance_top5": lk["chance_top5"], "chance_mrr": lk["chance_mrr"], "ties_share": lk["ties_share"]}}
    sim = m["similarity"]
    out["source_similarity"] = {**P.chance_test(sim["win"], float(np.mean(sim["chance"])) if len(sim["win"]) else 0.0),
                                "ssim_source_median": float(np.median(sim["ssim_source"])) if len(sim["win"]) else None}
    out["dcr"] = P.tail_difference(m["syn"]["dcr"], m["held"]["dcr"], 5, boots, seed)
    out["nndr"] = P.tail_difference(m["syn"]["nndr"], m["held"]["nndr"], 5, boots, seed + 1)
    out["authenticity"] = P.share_difference(~m["syn"]["authentic"], ~m["held"]["authentic"], boots, seed + 2)
    if not len(m["held"]["dcr"]):
        for key in ("dcr", "nndr", "authenticity"):
            out[key]["note"] = "no new real images (held-out splits, patient-disjoint from training) to compare with"
    if "copy_syn" in m:
        flags = m["copy_syn"] > P.NEAR_COPY_SSIM
        if len(m["copy_held"]):
            out["copying"] = P.share_difference(flags, m["copy_held"] > P.NEAR_COPY_SSIM, boots, seed + 3)
        else:
            out["copying"] = {**P.chance_test(flags.astype(float), 0.0), "p_value": None,
                              "note": "no new real COVID-19 images: the reference is no near copy at all"}
        out["copying"]["max_ssim"] = float(np.max(m["copy_syn"])) if len(m["copy_syn"]) else None
    else:
        out["copying"] = {"n": 0, "value": None, "note": "no COVID-19 translator training images found"}
    if "inverse" in m and len(m["inverse"]["win"]):
        inv = m["inverse"]
        out["inverse"] = {**P.chance_test(inv["win"], float(np.mean(inv["chance"]))),
                          "ssim_source_median": float(np.median(inv["ssim_source"]))}
    else:
        out["inverse"] = {"n": 0, "value": None, "note": "reverse generator unavailable"}
    return out


def _flag(row: dict, t: dict) -> bool | None:
    if t.get("value") is None or t.get("difference") is None:
        return None
    big = t["difference"] >= row["threshold"]
    if row["test"] == "binomial" and t.get("p_value") is not None:
        return bool(big and t["p_value"] < ALPHA)
    return bool(big and t["interval"] is not None and t["interval"][0] > 0)


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def verdicts(by_embedding: dict[str, dict], population: int | None = None) -> list[dict]:
    """One record per table test, taken on the worse embedding (flagged first, then the larger difference).

    ``by_embedding``: ``{embedding name: evaluate(...)}``; ``population``: how many synthetic images the
    sample was drawn from (stated in the words when larger than the sample).
    """
    names = list(by_embedding)
    records = []
    for row in THRESHOLDS:
        cands = [(name, by_embedding[name][row["key"]]) for name in names]
        scored = [(name, t, _flag(row, t)) for name, t in cands]
        measured = [s for s in scored if s[2] is not None]
        base = {k: row[k] for k in ("key", "name", "statistic", "reference", "threshold", "direction", "test")}
        if not measured:
            note = next((t.get("note") for _, t in cands if t.get("note")), "not measured")
            records.append({**base, "flagged": False, "verdict": "not measured", "detail": note, "embedding": None,
                            "value": None, "reference_value": None, "difference": None, "interval": None,
                            "p_value": None, "n": 0, "by_embedding": {}})
            continue
        name, t, flagged = max(measured, key=lambda s: (s[2], s[1]["difference"]))
        sig = (f"one-sided binomial p < {ALPHA} against chance" if row["test"] == "binomial"
               else "its 95% bootstrap interval lies above 0")
        sample = (f"{t['n']:,} images sampled at random from {population:,}" if population and population > t["n"]
                  else f"{t['n']:,} images")
        pv = f"; binomial p = {t['p_value']:.2g}" if t.get("p_value") is not None else ""
        others = [n for n in names if n != name]
        which = (f"decided by the {name} embedding, the worse of {', '.join([name] + others)}" if others
                 else f"embedding: {name} only")
        lo, hi = t["interval"]
        detail = (f"{_pct(t['value'])}% of synthetic images vs {_pct(t['reference'])}% reference "
                  f"({row['reference']}); difference {_pct(t['difference'], True)} points, 95% interval "
                  f"{_pct(lo, True)} to {_pct(hi, True)}{pv}; {sample}; {which}; flagged when the difference is at "
                  f"least {100 * row['threshold']:g} point{'' if row['threshold'] == 0.01 else 's'} and {sig}")
        if t.get("note"):
            detail += f"; {t['note']}"
        records.append({**base, "flagged": flagged, "verdict": row["flagged_words"] if flagged else row["passed_words"],
                        "detail": detail, "embedding": name, "value": t["value"], "reference_value": t["reference"],
                        "difference": t["difference"], "interval": [lo, hi], "p_value": t.get("p_value"),
                        "n": t["n"], "by_embedding": {n: _brief(x) for n, x in cands}})
    return records


def _brief(t: dict) -> dict:
    return {k: t.get(k) for k in ("n", "value", "reference", "difference", "interval", "p_value")}
