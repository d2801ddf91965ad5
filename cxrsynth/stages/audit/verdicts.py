"""From per-image measures to calibrated verdicts.

Every privacy verdict compares a statistic of the synthetic images with a reference that is its null:
the same statistic for new real images (a held-out set, patient-disjoint from training, of the label
the synthetic images were translated from, per config), the same procedure run on those new images
with a random training image as pseudo-source (the calibrated null of the SSIM tests), or chance
(linkage: the top-1 rate expected with the sources shuffled within config, which is 1 / pool size only
when every pool image is one image's source; an image made from a normal X-ray lies among normal
X-rays, and so does its source). A test is **flagged** when it is
significant (one-sided p < ``ALPHA``: binomial against chance, or Fisher's exact test stratified by
config against the calibrated null; for the bootstrap comparisons a 95% interval above 0) *and* its
margin is met: the difference is at least the threshold, or, for the tests with a ``lift``, the rate is
at least ``lift`` times the reference (a relative margin, since chance can be 1 / 5,000). Significant
but under the margin is not silence: it reads "... above chance at a low rate (x%, y x chance, p)".
Each test is run with every embedding given (pixels, classifier features) and the verdict is taken on
the worse one, which the record names.

``THRESHOLDS`` is the one table of data (name, statistic, reference, threshold, lift, direction, words)
that the audit applies and writes into ``audit.json``; each verdict record repeats its row, so the
dataset card renders the records as they are.
"""

from __future__ import annotations

import numpy as np

from . import privacy as P

ALPHA = 0.01  # binomial tests against chance: one-sided p below this

NULL_REFERENCE = ("the calibrated null: the same share for new real images (held-out, patient-disjoint, of the "
                  "source label), each given a random source of its config as pseudo-source")

THRESHOLDS: tuple[dict, ...] = (
    {"key": "linkage", "name": "own source found by nearest-neighbour search more often than chance",
     "statistic": "top-1 linkage rate: share of images whose nearest real image in the search pool is their own "
                  "source (ties split evenly)",
     "reference": "chance: the top-1 rate if each image's source were another image's source of the same config "
                  "(sources shuffled within config; 1 / pool size when every pool image is one image's source)",
     "test": "binomial", "threshold": 0.02, "lift": 10.0,
     "direction": "higher is worse", "flagged_words": "LINKABLE",
     "low_words": "linkable above chance at a low rate", "passed_words": "not linkable beyond chance by this test",
     "unit": "share"},
    {"key": "source_similarity", "name": "more similar (SSIM) to its own source, among similar real images, than a "
                                         "new real image is to a random one",
     "statistic": "share of images whose most similar (SSIM) image, among the own source and its nearest other "
                  "real images by embedding, is the own source (ties split evenly)",
     "reference": NULL_REFERENCE, "test": "two-proportion", "threshold": 0.05, "lift": 10.0,
     "direction": "higher is worse", "flagged_words": "RESEMBLES ITS SOURCE",
     "low_words": "resembles its source more often than the null, at a low rate",
     "passed_words": "no more similar to its source than a new real image is to a random one", "unit": "share"},
    {"key": "dcr", "name": "closer to a training image than new real images are",
     "statistic": "share of images closer to their nearest training image (distance to closest record) than the "
                  "closest 5% of new real images are",
     "reference": "the same share for new real images (held-out, patient-disjoint, of the source label), about 5%",
     "test": "bootstrap", "threshold": 0.05, "direction": "higher is worse",
     "flagged_words": "CLOSER TO TRAINING IMAGES THAN NEW IMAGES",
     "passed_words": "no closer to training images than new real images", "unit": "share"},
    {"key": "nndr", "name": "closer to one training image, relative to the next, than new real images are",
     "statistic": "share of images whose nearest-neighbour distance ratio (nearest / second nearest training "
                  "image) is below the 5th percentile of new real images",
     "reference": "the same share for new real images (held-out, patient-disjoint, of the source label), about 5%",
     "test": "bootstrap", "threshold": 0.05, "direction": "higher is worse",
     "flagged_words": "SINGLED OUT BY ONE TRAINING IMAGE",
     "passed_words": "no more singled out by one training image than new real images", "unit": "share"},
    {"key": "authenticity", "name": "less often authentic (Alaa et al. 2022) than new real images",
     "statistic": "share of images not authentic: closer to their nearest training image r* than r* is to its own "
                  "nearest training image",
     "reference": "the same share for new real images (held-out, patient-disjoint, of the source label)",
     "test": "bootstrap", "threshold": 0.10, "direction": "higher is worse", "flagged_words": "LESS AUTHENTIC THAN NEW IMAGES",
     "passed_words": "as authentic as new real images", "unit": "share"},
    {"key": "copying", "name": "near copies (SSIM > 0.95) of the COVID-19 images the translators saw",
     "statistic": "share of images with SSIM above 0.95 to a COVID-19 image the translators trained on "
                  "(nearest ones by embedding compared)",
     "reference": "the same share for new real COVID-19 images (held-out), or none when there are none",
     "test": "bootstrap", "threshold": 0.01, "direction": "higher is worse", "flagged_words": "NEAR COPIES FOUND",
     "passed_words": "no more near copies than among new real images", "unit": "share"},
    {"key": "inverse", "name": "reverse translation leads back to its source more often than a new real image "
                               "leads to a random one",
     "statistic": "share of images whose reverse translation (private reverse generator) is most similar (SSIM) "
                  "to the own source among the own source and its nearest other real images (ties split evenly)",
     "reference": NULL_REFERENCE, "test": "two-proportion", "threshold": 0.05, "lift": 10.0,
     "direction": "higher is worse", "flagged_words": "SOURCE RECOVERABLE",
     "low_words": "source recovered more often than the null, at a low rate",
     "passed_words": "source not recovered beyond the null", "unit": "share"},
)
#: the tests whose reference is new real images' distances to training: they say little when the
#: synthetic images sit off the real-image manifold (see :func:`off_manifold`)
DISTANCE_TESTS = ("dcr", "nndr", "authenticity")
TABLE = {row["key"]: row for row in THRESHOLDS}


# --- per-image measures ----------------------------------------------------------------------------------

def default_references(n_held: int, src: np.ndarray, seed: int = 0) -> dict:
    """One stratum (``"all"``): every new real image as the reference, each with a pseudo-source drawn
    at random from the synthetic images' sources (what :func:`per_image` uses without ``refs``)."""
    rng = np.random.default_rng(seed)
    pseudo = rng.choice(np.asarray(src), n_held) if len(src) else np.zeros(0, np.int64)
    return {"all": {"held": np.arange(n_held), "pseudo_source": pseudo.astype(np.int64)}}


def per_image(syn_px: np.ndarray, src: np.ndarray, pool_px: np.ndarray, held_px: np.ndarray, feats: dict,
              ct_px: np.ndarray | None = None, ch_px: np.ndarray | None = None, inv_px: np.ndarray | None = None,
              inv_index: np.ndarray | None = None, shortlist: int = 10, strata: np.ndarray | None = None,
              refs: dict | None = None) -> dict:
    """Every per-image measure, per embedding.

    ``feats[key]`` holds the embeddings ``syn``, ``pool``, ``held`` (and ``ct``, ``ch``, ``inv`` where those
    images are given): synthetic images, the search pool (training images; ``pool_px[src[i]]`` is the
    source of ``syn_px[i]``), new real images, the COVID-19 images the translators saw, new real COVID-19
    images, and the reverse translations of ``syn_px[inv_index]``.

    ``strata`` (one per synthetic image, e.g. its config) and ``refs`` ({stratum: {"held": indices into
    the new real images, "pseudo_source": one pool index per such image}}) make the references
    label-matched: each synthetic image is held against its stratum's new real images, and the SSIM
    null is the identical shortlist procedure run on those images with their pseudo-sources. Without
    them: one stratum, every new real image, pseudo-sources drawn from ``src`` (:func:`default_references`).
    """
    strata = np.full(len(syn_px), "all", dtype=object) if strata is None else np.asarray(strata, dtype=object)
    refs = default_references(len(held_px), src) if refs is None else refs
    out = {}
    for key, f in feats.items():
        radius = P.pool_radius(f["pool"])
        m: dict = {"linkage": P.linkage(f["syn"], f["pool"], src), "syn": P.closeness(f["syn"], f["pool"], radius),
                   "held": P.closeness(f["held"], f["pool"], radius),
                   "similarity": P.source_similarity(syn_px, pool_px, f["syn"], f["pool"], src, shortlist),
                   "strata": strata, "refs": {s: np.asarray(r["held"], np.int64) for s, r in refs.items()},
                   "null": {s: P.source_similarity(held_px[r["held"]], pool_px, f["held"][r["held"]], f["pool"],
                                                   np.asarray(r["pseudo_source"], np.int64), shortlist)
                            for s, r in refs.items()}}
        if ct_px is not None and len(ct_px):
            m["copy_syn"] = P.max_ssim_against(syn_px, ct_px, f["syn"], f["ct"], shortlist)
            m["copy_held"] = (P.max_ssim_against(ch_px, ct_px, f["ch"], f["ct"], shortlist)
                              if ch_px is not None and len(ch_px) else np.zeros(0))
        if inv_px is not None:
            m["inverse"] = P.source_similarity(inv_px, pool_px, f["inv"], f["pool"], src[inv_index], shortlist)
            m["inverse"]["stratum"] = strata[np.asarray(inv_index)]
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
    sel["linkage"] = {**P.rank_summary(lk["less"][mask], lk["ties"][mask], lk["pool_size"]),
                      "nearest": lk["nearest"][mask], "source": lk["source"][mask]}
    sel["syn"] = {k: v[mask] for k, v in m["syn"].items()}
    sel["strata"] = m["strata"][mask]
    sel["similarity"] = {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in m["similarity"].items()}
    if "copy_syn" in m:
        sel["copy_syn"] = m["copy_syn"][mask]
    if "inverse" in m:
        keep = mask[m["inverse_index"]]
        sel["inverse"] = {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in m["inverse"].items()}
    return sel


def _by_stratum(m: dict, values: np.ndarray) -> dict:
    """{stratum: ``values`` of that stratum's new real images} (values: one per new real image)."""
    return {s: np.asarray(values)[idx] for s, idx in m["refs"].items()}


def evaluate(m: dict, boots: int = 2000, seed: int = 0) -> dict:
    """Each table test on one embedding's measures: value, reference, difference, 95% interval, p, n."""
    lk = m["linkage"]
    strata = m["strata"]
    shuffled = P.shuffled_chance(lk["nearest"], lk["source"], strata)
    link = P.chance_test(lk["top1_credit"], float(shuffled.mean()) if len(shuffled) else lk["chance_top1"])
    out = {"linkage": {**link, "pool_size": lk["pool_size"], "pool_chance": lk["chance_top1"], "top5": lk["top5"],
                       "mrr": lk["mrr"], "chance_top5": lk["chance_top5"], "chance_mrr": lk["chance_mrr"],
                       "ties_share": lk["ties_share"]}}
    null = {s: r["win"] for s, r in m["null"].items()}
    refs_n = {s: len(idx) for s, idx in m["refs"].items()}
    sim = m["similarity"]
    out["source_similarity"] = {**P.null_comparison(sim["win"], null, boots, seed + 4, strata),
                                "naive_chance": float(np.mean(sim["chance"])) if len(sim["win"]) else None,
                                "ssim_source_median": float(np.median(sim["ssim_source"])) if len(sim["win"]) else None}
    out["dcr"] = P.tail_difference(m["syn"]["dcr"], _by_stratum(m, m["held"]["dcr"]), 5, boots, seed, strata)
    out["nndr"] = P.tail_difference(m["syn"]["nndr"], _by_stratum(m, m["held"]["nndr"]), 5, boots, seed + 1, strata)
    out["authenticity"] = P.share_difference(~m["syn"]["authentic"], _by_stratum(m, ~m["held"]["authentic"]), boots,
                                             seed + 2, strata)
    present = list(dict.fromkeys(strata.tolist()))
    for key in ("source_similarity", "dcr", "nndr", "authenticity"):
        out[key]["reference_sizes"] = {s: refs_n.get(s, 0) for s in present}
        if out[key]["value"] is None and len(strata):
            out[key]["note"] = ("no new real images (held-out splits, patient-disjoint from training) of "
                                + ", ".join(s for s in present if not refs_n.get(s)) + " to compare with")
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
        out["inverse"] = {**P.null_comparison(inv["win"], null, boots, seed + 5, inv["stratum"]),
                          "naive_chance": float(np.mean(inv["chance"])),
                          "ssim_source_median": float(np.median(inv["ssim_source"]))}
        if out["inverse"]["value"] is None:
            out["inverse"]["note"] = "no new real images of the sources' label for the calibrated null"
    else:
        out["inverse"] = {"n": 0, "value": None, "note": "reverse generator unavailable"}
    return out


def _lift(t: dict) -> float | None:
    """The rate over its reference (None when the reference is 0)."""
    return t["value"] / t["reference"] if t.get("reference") else None


def _state(row: dict, t: dict) -> str | None:
    """``flagged`` (significant and the margin met), ``low`` (significant, margin not met, for the tests
    with words for it), ``passed``, or None when not measured."""
    if t.get("value") is None or t.get("difference") is None:
        return None
    lift = _lift(t)
    margin = t["difference"] >= row["threshold"] or (
        row.get("lift") is not None and lift is not None and lift >= row["lift"])
    if row["test"] == "bootstrap":
        sig = t["interval"] is not None and t["interval"][0] > 0
    else:
        sig = t.get("p_value") is not None and t["p_value"] < ALPHA
    if sig and margin:
        return "flagged"
    return "low" if sig and row.get("low_words") and t["difference"] > 0 else "passed"


def _flag(row: dict, t: dict) -> bool | None:
    state = _state(row, t)
    return None if state is None else state == "flagged"


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _low_words(row: dict, t: dict) -> str:
    """E.g. "linkable above chance at a low rate (0.8%, 6.1x chance, p = 0.0015)"."""
    lift = _lift(t)
    ref = "chance" if row["test"] == "binomial" else "the null"
    times = f", {lift:.1f}x {ref}" if lift is not None else ""
    return f"{row['low_words']} ({_pct(t['value'])}%{times}, p = {t['p_value']:.2g})"


def _margin_words(row: dict) -> str:
    pts = f"{100 * row['threshold']:g} point{'' if row['threshold'] == 0.01 else 's'}"
    return pts + (f" or {row['lift']:g}x the reference" if row.get("lift") else "")


def verdicts(by_embedding: dict[str, dict], population: int | None = None, caveat: str | None = None) -> list[dict]:
    """One record per table test, taken on the worse embedding (flagged first, then significant, then
    the larger difference).

    ``by_embedding``: ``{embedding name: evaluate(...)}``; ``population``: how many synthetic images the
    sample was drawn from (stated in the words when larger than the sample); ``caveat``: a sentence for
    the distance tests (:data:`DISTANCE_TESTS`), e.g. :func:`off_manifold`'s, kept as the record's
    ``caveat``.
    """
    names = list(by_embedding)
    rank = {"flagged": 2, "low": 1, "passed": 0}
    records = []
    for row in THRESHOLDS:
        cands = [(name, by_embedding[name][row["key"]]) for name in names]
        scored = [(name, t, _state(row, t)) for name, t in cands]
        measured = [s for s in scored if s[2] is not None]
        base = {k: row[k] for k in ("key", "name", "statistic", "reference", "threshold", "direction", "test")}
        base["lift_threshold"] = row.get("lift")
        if not measured:
            note = next((t.get("note") for _, t in cands if t.get("note")), "not measured")
            records.append({**base, "flagged": False, "significant": False, "verdict": "not measured", "detail": note,
                            "embedding": None, "value": None, "reference_value": None, "difference": None,
                            "lift": None, "interval": None, "p_value": None, "n": 0, "by_embedding": {}})
            continue
        name, t, state = max(measured, key=lambda s: (rank[s[2]], s[1]["difference"]))
        sig = {"binomial": f"one-sided binomial p < {ALPHA} against chance",
               "two-proportion": f"one-sided exact two-proportion p < {ALPHA} against the null (Fisher, stratified by config)",
               "bootstrap": "its 95% bootstrap interval lies above 0"}[row["test"]]
        sample = (f"{t['n']:,} images sampled at random from {population:,}" if population and population > t["n"]
                  else f"{t['n']:,} images")
        pv = ""
        if t.get("p_value") is not None:
            pv = f"; {'binomial' if row['test'] == 'binomial' else 'exact two-proportion'} p = {t['p_value']:.2g}"
        lift = _lift(t)
        lx = f" ({lift:.1f}x)" if lift is not None and row.get("lift") else ""
        others = [n for n in names if n != name]
        which = (f"decided by the {name} embedding, the worse of {', '.join([name] + others)}" if others
                 else f"embedding: {name} only")
        sizes = t.get("reference_sizes")
        refs = ("; new real images per stratum: " + ", ".join(f"{s} {k:,}" for s, k in sizes.items())
                if sizes and list(sizes) != ["all"] else "")
        lo, hi = t["interval"]
        detail = (f"{_pct(t['value'])}% of synthetic images vs {_pct(t['reference'])}% reference{lx} "
                  f"({row['reference']}); difference {_pct(t['difference'], True)} points, 95% interval "
                  f"{_pct(lo, True)} to {_pct(hi, True)}{pv}; {sample}{refs}; {which}; flagged when the difference is "
                  f"at least {_margin_words(row)} and {sig}")
        if row["key"] == "linkage" and t.get("pool_chance") is not None:
            detail += f"; 1 / pool size = {100 * t['pool_chance']:.2g}%"
        if row["key"] in ("source_similarity", "inverse") and t.get("naive_chance") is not None:
            detail += (f"; 1 / (shortlist + 1) = {_pct(t['naive_chance'])}% is not the null (the others are the "
                       "image's nearest, the source is not)")
        if t.get("note"):
            detail += f"; {t['note']}"
        words = {"flagged": row["flagged_words"], "low": _low_words(row, t) if state == "low" else "",
                 "passed": row["passed_words"]}[state]
        rec = {**base, "flagged": state == "flagged", "significant": state in ("flagged", "low"), "verdict": words,
               "detail": detail, "embedding": name, "value": t["value"], "reference_value": t["reference"],
               "difference": t["difference"], "lift": lift, "interval": [lo, hi], "p_value": t.get("p_value"),
               "n": t["n"], "by_embedding": {n: _brief(x) for n, x in cands}}
        if caveat and row["key"] in DISTANCE_TESTS:
            rec["caveat"] = caveat
        records.append(rec)
    return records


def caveat_after(record: dict) -> str | None:
    """The caveat to print after ``record``: once, after the last distance test that carries it."""
    return record.get("caveat") if record.get("key") == DISTANCE_TESTS[-1] else None


def _brief(t: dict) -> dict:
    return {k: t.get(k) for k in ("n", "value", "reference", "difference", "interval", "p_value")}


# --- off the real-image manifold -------------------------------------------------------------------------

#: the real-vs-synthetic probe's lower 95% bound above this (and above the two-halves-of-real probe's
#: upper bound): the images are told from real ones so easily that their distances to training images
#: are not comparable with new real images' distances
OFF_MANIFOLD_AUROC = 0.7


def off_manifold(fidelity_part: dict | None, what: str = "COVID-19") -> str | None:
    """One sentence for the distance verdicts when a probe tells the synthetic images from real ones
    (the fidelity section's ``overall`` or a ``per_config`` part, :mod:`cxrsynth.stages.audit.fidelity`), else
    None. A distance test that passes on images off the real manifold shows low fidelity, not privacy."""
    if not fidelity_part:
        return None
    pr = fidelity_part.get("probes", {})
    # against the training images and, where measured, held-out ones: the more separable decides
    probes = [(k, pr[k]) for k in ("real_vs_synthetic", "heldout_vs_synthetic") if (pr.get(k) or {}).get("auroc_ci95")]
    key, syn = max(probes, key=lambda kp: kp[1]["auroc_ci95"][0]) if probes else ("real_vs_synthetic", {})
    halves = pr.get("real_halves") or {}
    ci = syn.get("auroc_ci95")
    if syn.get("auroc") is None or not ci:
        return None
    floor = max(OFF_MANIFOLD_AUROC, (halves.get("auroc_ci95") or [0, 0.5])[1])
    if ci[0] <= floor:
        return None
    kid = ""
    for space in ("cxr_encoder", "pixels"):
        k = (fidelity_part.get("kid") or {}).get(space)
        if k and k["synthetic_vs_heldout"]["mean"] is not None and k["floor_train_vs_heldout"]["mean"] is not None:
            kid = (f", and in the {space.replace('_', ' ')} space their KID to held-out real {what} is "
                   f"{k['synthetic_vs_heldout']['mean']:.3g} against {k['floor_train_vs_heldout']['mean']:.3g} "
                   "between real training and held-out images")
            break
    hv = f"; two halves of real images: {halves['auroc']:.2f}" if halves.get("auroc") is not None else ""
    return (f"Distances to training images are not comparable with real-to-real distances here: a probe tells these "
            f"images from {'held-out ' if key == 'heldout_vs_synthetic' else ''}real {what} at AUROC {syn['auroc']:.2f} "
            f"[{ci[0]:.2f}, {ci[1]:.2f}]{hv}{kid}. The images sit "
            "off the real-image manifold, so passing the distance tests reflects low fidelity, not evidence of privacy.")
