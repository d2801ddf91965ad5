"""Fidelity of translated images, always shown between two baselines.

A KID or a probe AUROC alone says little: is 0.2 good? So every measure here is taken three times,
against the same real COVID-19 reference and at the same sample size:

- **synthetic** vs real COVID-19 (training images, and held-out ones, patient-disjoint);
- **untranslated**: the synthetic images' own source images vs real COVID-19, the "translator did
  nothing" baseline;
- **floor**: real COVID-19 training vs held-out images, what "as good as real" looks like.

- **another hospital** (optional, ``--external NAME=DIR``): real COVID-19 X-rays of another collection
  vs the same reference. A measure that separates these as well as it separates the synthetic images
  measures where an image was taken, not whether it is real (the sample's Hannover set: a pixel probe
  tells it from the COVID-19 collection's training images at AUROC 0.96).

``placement`` = (untranslated - synthetic) / (untranslated - floor): 0 at the untranslated baseline,
1 at the floor, negative when translating made the images *farther* from COVID-19 than doing nothing.

Measures: KID (mean and a percentile interval over equal-size subsamples) in several feature spaces
(pixels, the benchmark classifier when there is one, Inception only when its file is on disk, and a
chest X-ray encoder trained here on all real training images: :mod:`cxrsynth.stages.audit.encoder`), the
real-vs-synthetic probe (the benchmark's patient-grouped classifier two-sample test), the azimuthally
averaged power spectrum (Durall et al. 2020: up-convolution artefacts and banding show there), and how
much the translator changes an image (SSIM to its own source; a translated-vs-own-source probe).

Every image enters each feature space from the same array size through the same resampling
(:func:`resample`): synthetic images at their size, real ones decoded to that size by
:func:`cxrsynth.data.images.load_canonical`, the path the translator's inputs took.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch import nn

from ...artifacts.split_data import SplitData
from . import quality as Q
from .embed import embed
from .privacy import ssim_many

LEVEL = 0.95


@dataclass(frozen=True)
class FidelityConfig:
    n_max: int | None = 500  # largest equal-size subsample for KID (all comparisons use one n)
    repeats: int = 20  # KID subsamples; the interval is their 2.5th..97.5th percentile
    probe_bootstrap: int = 1000  # patient resamples for each probe's AUROC interval
    spectral_bootstrap: int = 1000  # patient resamples for the interval of each spectral excess over the floor
    encoder_epochs: int = 20  # of the chest X-ray encoder, when it is not cached in the work folder
    seed: int = 0


# --- pure measures ----------------------------------------------------------------------------------

def kid_interval(a: np.ndarray, b: np.ndarray, n: int | None = None, repeats: int = 20, seed: int = 0) -> dict:
    """KID of two feature sets on ``repeats`` equal-size subsamples of ``n`` (default: the smaller set):
    mean, std and the central 95% of the subsample values."""
    n = min(len(a), len(b), n or max(len(a), len(b)))
    if n < 2:
        return {"n": int(n), "repeats": 0, "mean": None, "std": None, "interval": None}
    rng = np.random.default_rng(seed)
    picks = [(rng.choice(len(a), n, replace=False), rng.choice(len(b), n, replace=False)) for _ in range(repeats)]
    vals = Q.kid_subsets(a, b, picks)  # torch-fidelity's KID of each pair of subsamples, its kernels computed once
    q = (1 - LEVEL) / 2
    return {"n": int(n), "repeats": int(repeats), "mean": float(vals.mean()), "std": float(vals.std()),
            "interval": [float(np.quantile(vals, q)), float(np.quantile(vals, 1 - q))]}


def placement(synthetic: float | None, untranslated: float | None, floor: float | None) -> float | None:
    """Where ``synthetic`` sits on the line from the untranslated baseline (0) to the floor (1), for a
    distance (lower is closer). None when the baseline is not farther than the floor: then there is no
    scale to place anything on (the measure cannot tell the source images from real COVID-19)."""
    if None in (synthetic, untranslated, floor) or untranslated - floor < 1e-12:
        return None
    return float((untranslated - synthetic) / (untranslated - floor))


def radial_spectrum(images: np.ndarray) -> np.ndarray:
    """Per image, the azimuthally averaged power spectrum (Durall et al. 2020), normalised to unit power
    outside the DC term (so brightness and contrast do not count, only how power spreads over
    frequencies), as log10: float (N, side // 2 + 1), radius 0 = DC."""
    x = images.astype(np.float64) / 255
    x = x - x.mean((1, 2), keepdims=True)
    h, w = x.shape[1:]
    power = np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(1, 2))) ** 2
    yy, xx = np.indices((h, w))
    r = np.hypot(yy - h // 2, xx - w // 2).round().astype(np.int64)
    bins = min(h, w) // 2 + 1
    keep = r < bins
    counts = np.bincount(r[keep], minlength=bins)
    prof = np.stack([np.bincount(r[keep], weights=p[keep], minlength=bins) / counts for p in power])
    prof = prof / np.maximum(prof[:, 1:].sum(1, keepdims=True), 1e-20)
    return np.log10(prof + 1e-12)


def spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the mean log spectra of two sets (:func:`radial_spectrum` rows),
    over every frequency but DC."""
    return float(np.abs(a.mean(0)[1:] - b.mean(0)[1:]).mean())


def spectral_excess(x: np.ndarray, groups_x: list[str], real: np.ndarray, groups_real: list[str],
                    ref: np.ndarray, groups_ref: list[str], repeats: int = 1000, seed: int = 0) -> dict:
    """How much farther the spectra ``x`` are from a reference set of real COVID-19 (``ref``) than another
    real set (``real``) is: :func:`spectral_distance` of x minus the floor's, with the central 95% of that
    difference over ``repeats`` patient resamples (each patient drawn with all of its images, with
    replacement). Rows are :func:`radial_spectrum` rows; the interval is None with fewer than 2 patients in
    a set. The audit takes it both ways round: held-out images as the reference and the training images as
    the floor, and the other way.

    Why a difference, not an interval per distance: the distance is a mean of absolute differences, so two
    samples of one distribution sit above 0 by an amount that grows with resampling noise (real training vs
    held-out COVID-19 of one collection reads 0.053 on the sample). Each resample draws the reference once
    for both terms, and ``x`` at ``real``'s image count, so the two terms carry the same noise and the
    difference is centred where the point value is. An interval that holds 0 means "as far from the
    reference as real images are": a goal below the floor cannot be told from it."""
    from ...measure.metrics import resample_patients, rows_by_patient  # scikit-learn, scipy.stats: not at import

    value = spectral_distance(x, ref) - spectral_distance(real, ref)
    rows = [rows_by_patient(g, sort=True) for g in (groups_x, groups_real, groups_ref)]
    if min(len(r) for r in rows) < 2:
        return {"value": float(value), "interval": None, "repeats": 0}
    rng = np.random.default_rng(seed)

    def draw(patients: list[np.ndarray], count: int | None = None) -> np.ndarray:
        if count is None:
            return resample_patients(patients, rng)
        out: list[np.ndarray] = []
        total = 0
        while total < count:
            out.append(patients[rng.integers(0, len(patients))])
            total += len(out[-1])
        return np.concatenate(out)[:count]

    vals = []
    for _ in range(repeats):
        r = ref[draw(rows[2])]
        vals.append(spectral_distance(x[draw(rows[0], len(real))], r) - spectral_distance(real[draw(rows[1])], r))
    q = (1 - LEVEL) / 2
    return {"value": float(value), "interval": [float(np.quantile(vals, q)), float(np.quantile(vals, 1 - q))],
            "repeats": int(repeats)}


def ssim_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each image of ``a`` to the image of ``b`` at the same position (the audit's SSIM)."""
    return np.array([ssim_many(x, y[None])[0] for x, y in zip(a, b)])


def correlation_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of the pixels of each image of ``a`` with the image of ``b`` at the same
    position (0 where either is flat). Why beside SSIM: a CycleGAN can satisfy its cycle loss with an
    intensity inversion (bright lungs, dark mediastinum) that it undoes on the way back. SSIM near 0 does
    not say that happened; a correlation near -1 does."""
    x = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    x -= x.mean(1, keepdims=True)
    y -= y.mean(1, keepdims=True)
    den = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    return np.divide((x * y).sum(1), den, out=np.zeros(len(x)), where=den > 0)


def probe(a: np.ndarray, b: np.ndarray, groups_a: list[str], groups_b: list[str], bootstrap: int, seed: int) -> dict:
    """The benchmark's classifier two-sample test (logistic regression on 32x32 pixels, folds by
    patient), with both sets brought to 32 px by :func:`cxrsynth.measure.probe.probe_pixels`."""
    from ...measure.probe import probe as _probe
    from ...measure.probe import probe_pixels

    out = _probe(probe_pixels(a), probe_pixels(b), groups_a, groups_b, bootstrap, seed)
    return {k: out[k] for k in ("n_a", "n_b", "auroc", "auroc_ci95") if k in out} | (
        {"note": out["note"]} if "note" in out else {})


def _cap(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, cap, replace=False)) if n > cap else np.arange(n)


def halves(groups: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of a set split by patient (seeded): no patient on both sides."""
    pats = sorted(set(groups))
    chosen = set(np.random.default_rng(seed).permutation(pats)[: len(pats) // 2].tolist())
    mask = np.array([g in chosen for g in groups])
    return np.flatnonzero(mask), np.flatnonzero(~mask)


@dataclass
class Sets:
    """Pixels (uint8, N x S x S, one size) and patient groups of the sets compared. ``src`` is the
    source image of ``syn`` at the same position; ``src_groups`` its patient."""

    syn: np.ndarray
    src: np.ndarray
    src_groups: list[str]
    train: np.ndarray  # real COVID-19, training split
    train_groups: list[str]
    held: np.ndarray  # real COVID-19, held-out (patient-disjoint from training)
    held_groups: list[str]


@dataclass
class ExternalReal:
    """Real COVID-19 X-rays of another collection (pixels uint8, N x S x S, at the synthetic size; their
    patients), and what reading them left out (``report``: the counts of ``load_external``, no paths)."""

    name: str
    pixels: np.ndarray
    groups: list[str]
    report: dict


def external_baseline(e: ExternalReal, spaces: dict[str, nn.Module], cache: dict, train: np.ndarray,
                      train_groups: list[str], held: np.ndarray, n: dict[str, int], cfg: FidelityConfig) -> dict:
    """The "another hospital" baseline: ``e`` against the same real COVID-19 reference as the synthetic
    images (the training images for the probe, the held-out ones for KID at the synthetic images' ``n``
    per space and for the spectrum). ``cache``: :func:`measure`'s, which holds the real sets' features."""
    from ...measure.probe import PROBE_MAX

    rng = np.random.default_rng(cfg.seed)
    i_e, i_t = _cap(len(e.pixels), PROBE_MAX, rng), _cap(len(train), PROBE_MAX, rng)
    kid = {name: kid_interval(embed(module, e.pixels), cache[name]["held"], n.get(name), cfg.repeats, cfg.seed)
           for name, module in spaces.items()}
    return {"n": len(e.pixels), "patients": len(set(e.groups)),
            "probe_real_vs_external": probe(train[i_t], e.pixels[i_e], [train_groups[i] for i in i_t],
                                            [e.groups[i] for i in i_e], cfg.probe_bootstrap, cfg.seed),
            "kid_vs_heldout": kid,
            "spectral_vs_heldout": spectral_distance(radial_spectrum(e.pixels), radial_spectrum(held)),
            "read": {k: e.report.get(k) for k in ("kept", "patients", "duplicates_of_training_dropped",
                                                   "duplicates_of_validation_dropped", "duplicates_of_test_dropped",
                                                   "bad_files", "label_only")}}


def kid_section(feats: dict[str, np.ndarray], n_max: int | None, repeats: int, seed: int) -> dict:
    """The five KID comparisons of one feature space, at one n (the smallest set, capped), and the
    placement of the synthetic images against the held-out reference (the floor is measured there)."""
    n = min([len(v) for v in feats.values()] + [n_max or 10**9])
    k = lambda x, y: kid_interval(feats[x], feats[y], n, repeats, seed)
    out = {"synthetic_vs_train": k("syn", "train"), "synthetic_vs_heldout": k("syn", "held"),
           "untranslated_vs_train": k("src", "train"), "untranslated_vs_heldout": k("src", "held"),
           "floor_train_vs_heldout": k("train", "held")}
    out["placement"] = placement(out["synthetic_vs_heldout"]["mean"], out["untranslated_vs_heldout"]["mean"],
                                 out["floor_train_vs_heldout"]["mean"])
    return out


def measure(sets: Sets, spaces: dict[str, nn.Module], cfg: FidelityConfig = FidelityConfig(),
            cache: dict | None = None) -> dict:
    """Every fidelity measure of one synthetic set. ``cache``: a dict that keeps what depends only on the
    real sets (their features, the two-halves probe) between calls on the same real sets (per config)."""
    rng = np.random.default_rng(cfg.seed)
    s = sets
    cache = {} if cache is None else cache
    kid, pixels = {}, {}
    for name, module in spaces.items():
        if name not in cache:
            cache[name] = {"train": embed(module, s.train), "held": embed(module, s.held)}
        f = {"syn": embed(module, s.syn), "src": embed(module, s.src), **cache[name]}
        if name == "pixels":
            pixels = f
        kid[name] = {"extractor": getattr(module, "name", type(module).__name__), "dimension": int(f["syn"].shape[1]),
                     **kid_section(f, cfg.n_max, cfg.repeats, cfg.seed)}
    spec = {k: radial_spectrum(v) for k, v in (("syn", s.syn), ("src", s.src), ("train", s.train), ("held", s.held))}
    spectrum = {"synthetic_vs_train": spectral_distance(spec["syn"], spec["train"]),
                "synthetic_vs_heldout": spectral_distance(spec["syn"], spec["held"]),
                "untranslated_vs_heldout": spectral_distance(spec["src"], spec["held"]),
                "floor_train_vs_heldout": spectral_distance(spec["train"], spec["held"]),
                "mean_log_power": {k: v.mean(0).round(5).tolist() for k, v in spec.items()}}
    # against each real set as the reference, the other real set giving the floor: held-out images no
    # discriminator saw (60 on the sample, so wide), and the larger training set the translator learnt from
    real = {"heldout": ("train", "held"), "train": ("held", "train")}
    groups = {"train": s.train_groups, "held": s.held_groups}
    spectrum["excess_over_floor"] = {
        ref: {key: spectral_excess(spec[x], s.src_groups, spec[other], groups[other], spec[r], groups[r],
                                   cfg.spectral_bootstrap, cfg.seed) for key, x in (("synthetic", "syn"), ("untranslated", "src"))}
        for ref, (other, r) in real.items()}
    spectrum["placement"] = placement(spectrum["synthetic_vs_heldout"], spectrum["untranslated_vs_heldout"],
                                      spectrum["floor_train_vs_heldout"])
    from ...measure.probe import PROBE_MAX

    i_syn, i_train = _cap(len(s.syn), PROBE_MAX, rng), _cap(len(s.train), PROBE_MAX, rng)
    syn_g = [f"source:{s.src_groups[i]}" for i in i_syn]
    tr_g = [s.train_groups[i] for i in i_train]
    pb = lambda a, b, ga, gb: probe(a, b, ga, gb, cfg.probe_bootstrap, cfg.seed)
    probes = {"real_vs_synthetic": pb(s.train[i_train], s.syn[i_syn], tr_g, syn_g),
              "real_vs_untranslated": pb(s.train[i_train], s.src[i_syn], tr_g, syn_g),
              "translated_vs_own_source": pb(s.src[i_syn], s.syn[i_syn], syn_g, syn_g)}
    if "_real_halves" in cache:
        probes["real_halves"] = cache["_real_halves"]
    else:
        real = np.concatenate([s.train, s.held])
        groups = list(s.train_groups) + list(s.held_groups)
        a, b = halves(groups, cfg.seed)
        a, b = a[_cap(len(a), PROBE_MAX, rng)], b[_cap(len(b), PROBE_MAX, rng)]
        probes["real_halves"] = cache["_real_halves"] = pb(real[a], real[b], [groups[i] for i in a],
                                                           [groups[i] for i in b])
    # the same probe against held-out real COVID-19, which no discriminator saw: a translator trained to
    # fool a discriminator on the training images can pass a probe against those very images alone
    i_held = _cap(len(s.held), PROBE_MAX, rng)
    held_g = [s.held_groups[i] for i in i_held]
    probes["heldout_vs_synthetic"] = pb(s.held[i_held], s.syn[i_syn], held_g, syn_g)
    probes["heldout_vs_untranslated"] = pb(s.held[i_held], s.src[i_syn], held_g, syn_g)
    ss = ssim_pairs(s.syn, s.src)
    r = correlation_pairs(s.syn, s.src)
    change = {"ssim_to_source": _distribution(ss),
              "correlation_to_source": _distribution(r) | {"inverted_share": float(np.mean(r < 0)) if len(r) else None},
              "probe_translated_vs_own_source": probes["translated_vs_own_source"],
              **({"linkage_to_source": source_linkage(pixels["syn"], pixels["src"], s.src)} if pixels else {})}
    return {"n": {"synthetic": len(s.syn), "real_covid_train": len(s.train), "real_covid_heldout": len(s.held)},
            "kid": kid, "probes": probes, "spectrum": spectrum, "change": change}


def source_linkage(syn: np.ndarray, src: np.ndarray, src_pixels: np.ndarray) -> dict:
    """How often each synthetic image's nearest source image, in 32 px z-scored pixels (``syn``, ``src``:
    their embeddings), is its own source: top-1 among the distinct sources of this set, with chance 1 / their
    number. The audit's privacy section asks the same of a release against every real image; this is the
    same question per recipe or checkpoint, beside its fidelity, since closer to real COVID-19 has meant
    closer to the source on the sample (bench/results/release-comparison/). ``src_pixels``: the sources'
    pixels, to count a source translated twice once."""
    from .privacy import linkage

    if len(syn) < 2:
        return {"top1": None, "chance_top1": None, "pool_size": len(syn)}
    first: dict[bytes, int] = {}
    index = np.array([first.setdefault(x.tobytes(), len(first)) for x in src_pixels])
    keep = np.unique(index, return_index=True)[1]
    out = linkage(syn, src[keep], index)
    return {"top1": out["top1"], "chance_top1": out["chance_top1"], "pool_size": out["pool_size"]}


def _distribution(x: np.ndarray) -> dict:
    """Count, median, mean and quartiles of one value per image (None for each when there is none)."""
    if not len(x):
        return {"n": 0, "median": None, "mean": None, "quartiles": None}
    return {"n": len(x), "median": float(np.median(x)), "mean": float(x.mean()),
            "quartiles": [float(np.quantile(x, .25)), float(np.quantile(x, .75))]}


# --- from the records and split (SplitData), never a work folder -------------------------------------

SPACES = ("pixels", "cxr_encoder", "classifier", "inception")  # the order of tables and of row() columns
PROBES = ("real_vs_synthetic", "real_vs_untranslated", "real_halves", "translated_vs_own_source",
          "heldout_vs_synthetic", "heldout_vs_untranslated")  # row() columns (the last two: sections of 2026-12-06 on)


def feature_spaces(data: SplitData, classifier: str | Path | None = None, inception_weights: str | Path | None = None,
                   encoder_epochs: int = 20, seed: int = 0,
                   encoder_cache: str | Path | None = None) -> tuple[dict[str, nn.Module], dict]:
    """Pixels, the chest X-ray encoder of ``data``'s training images (trained on first use, cached at
    ``encoder_cache`` when given), the ``classifier`` file when given, and Inception (only when
    torch-fidelity and its weights file are on disk; never downloaded). Returns the modules and what is
    known of them (the encoder's sha256 and training, why a space is absent)."""
    from .embed import ClassifierEmbedding, PixelEmbedding
    from .encoder import cxr_encoder

    spaces: dict[str, nn.Module] = {"pixels": PixelEmbedding()}
    enc, enc_info = cxr_encoder(data, encoder_epochs, seed, encoder_cache)
    spaces["cxr_encoder"] = enc
    info = {"cxr_encoder": {k: enc_info.get(k) for k in ("sha256", "images", "by_class", "epochs", "seed", "train_accuracy",
                                                         "validation_accuracy", "ids_sha256", "architecture")}}
    if classifier:
        spaces["classifier"] = ClassifierEmbedding(classifier).eval()
    weights = Q.inception_available(inception_weights)
    if weights:
        spaces["inception"] = Q.InceptionFeatures(weights).eval()
    else:
        info["inception"] = (f"torch-fidelity or its weights file ({inception_weights or Q.default_inception_path()}) "
                             "not on disk: not measured (never downloaded)")
    return spaces, info


def external_real(data: SplitData, externals: dict[str, str], size: int) -> list[ExternalReal]:
    """The COVID-19 images of each external folder (``{name: folder}``, any layout ``cxrsynth ingest``
    reads, as the benchmark's ``--external``), decoded at ``size``; images duplicating one of the split
    are dropped and counted (:func:`cxrsynth.stages.external_sets.read_external`, as the benchmark reads them)."""
    from ...core.errors import DataNotFoundError
    from ...measure.decoded import canonical as load_canonical
    from ..external_sets import patient_key, read_external

    out = []
    for name, folder in externals.items():
        kept, report = read_external(folder, data)
        covid = sorted((r for r in kept if r.label == "covid"), key=lambda r: r.record_id)
        if not covid:
            raise DataNotFoundError(f"the external set {name!r} has no COVID-19 image with pixels", folder,
                                    f"read: {report.get('by_label')}")
        out.append(ExternalReal(name, np.stack([load_canonical(r.path, size) for r in covid]),
                                [patient_key(name, r) for r in covid], report))
    return out


def _patient(r) -> str:
    return r.patient_group or f"{r.source}:{r.patient_id}"


def real_sets(data: SplitData, size: int) -> tuple[dict, np.ndarray, list[str], np.ndarray, list[str]]:
    """Records by id, and the real COVID-19 images at ``size``: the training split, and the held-out
    ones (other splits, patients absent from training), with their patients."""
    from ...measure.decoded import canonical as load_canonical  # decoded once per process

    records = {r.record_id: r for r in data.grouped if r.has_pixels}  # the split's patients (--patient-map too)
    assign = data.assign
    train_patients = {_patient(r) for i, r in records.items() if assign.get(i) == "train"}
    covid = sorted(i for i, r in records.items() if r.label == "covid")
    tr = [i for i in covid if assign.get(i) == "train"]
    he = [i for i in covid if assign.get(i) not in (None, "train") and _patient(records[i]) not in train_patients]
    load = lambda ids: (np.stack([load_canonical(records[i].path, size) for i in ids]) if ids
                        else np.zeros((0, size, size), np.uint8))
    return (records, load(tr), [_patient(records[i]) for i in tr], load(he), [_patient(records[i]) for i in he])


def score(data: SplitData, syn: np.ndarray, source_ids: list[str], configs: list[str] | None = None,
          cfg: FidelityConfig = FidelityConfig(), spaces: tuple[dict, dict] | None = None,
          external: list[ExternalReal] | None = None) -> dict:
    """The fidelity section for synthetic images ``syn`` (uint8 N x S x S) made from the real images
    ``source_ids`` of ``data`` (records and split): overall, and per config when ``configs`` (one per
    image) is given. ``spaces``: :func:`feature_spaces`' answer, when the caller has one (else made
    here, with an encoder kept nowhere). ``external``: real COVID-19 of other collections
    (:func:`external_real`), each measured once as a third baseline (``external_real``)."""
    from ...core.errors import DataNotFoundError

    if len(syn) != len(source_ids) or not len(syn):
        raise DataNotFoundError("synthetic images and their source ids do not match (or there are none)",
                                f"{len(syn)} images, {len(source_ids)} source ids")
    modules, space_info = spaces or feature_spaces(data, encoder_epochs=cfg.encoder_epochs, seed=cfg.seed)
    records, train, train_g, held, held_g = real_sets(data, syn.shape[-1])
    missing = [i for i in source_ids if i not in records]
    if missing:
        raise DataNotFoundError(f"{len(missing)} source ids are not images of this work folder", missing[0],
                                "score translations against the work folder they were made from")
    from ...measure.decoded import canonical as load_canonical  # decoded once per process

    src = np.stack([load_canonical(records[i].path, syn.shape[-1]) for i in source_ids])
    src_g = [_patient(records[i]) for i in source_ids]
    cache: dict = {}

    def part(mask: np.ndarray) -> dict:
        k = np.flatnonzero(mask)
        return measure(Sets(syn[k], src[k], [src_g[i] for i in k], train, train_g, held, held_g), modules, cfg, cache)

    out = {"reference": "real COVID-19 X-rays of the work folder: training split, and held-out (patient-disjoint)",
           "placement": "0 = the untranslated source images, 1 = as close as real held-out COVID-19 images are to "
                        "real training ones (KID against held-out images); below 0: farther than doing nothing",
           "size": int(syn.shape[-1]), "config": dict(vars(cfg)), "feature_spaces": {k: getattr(m, "name", k) for k, m in modules.items()},
           "feature_space_notes": space_info, "overall": part(np.ones(len(syn), bool))}
    if external:
        n = {name: k["synthetic_vs_heldout"]["n"] for name, k in out["overall"]["kid"].items()}
        out["external_real"] = {e.name: external_baseline(e, modules, cache, train, train_g, held, n, cfg)
                                for e in external}
    if configs is not None:
        configs = np.asarray(configs)
        out["per_config"] = {str(c): part(configs == c) for c in sorted(set(configs.tolist()))}
    return out


# --- presentation -----------------------------------------------------------------------------------

def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _kid(x: dict) -> str:
    return "n/a" if x.get("mean") is None else f"{x['mean']:.3g}"


def sentence(section: dict) -> str:
    """One plain sentence placing the synthetic images between "untranslated" and "as good as real" in
    each feature space, from the numbers of ``section`` (:func:`score`'s answer)."""
    o = section["overall"]
    parts = []
    for name in (s for s in SPACES if s in o["kid"]):
        k = o["kid"][name]
        p = k["placement"]
        where = ("n/a" if p is None else "farther from real COVID-19 than the untranslated sources" if p < 0
                 else "at the real floor or closer" if p >= 1 else f"{p:.0%} of the way from untranslated to as good as real")
        parts.append(f"{name.replace('_', ' ')}: {where} (KID {_kid(k['synthetic_vs_heldout'])}; untranslated "
                     f"{_kid(k['untranslated_vs_heldout'])}, real {_kid(k['floor_train_vs_heldout'])})")
    pr = o["probes"]
    auc = lambda p: "n/a" if p.get("auroc") is None else f"{p['auroc']:.2f}"
    text = ("Against held-out real COVID-19 X-rays, the synthetic images sit, in " + "; in ".join(parts)
            + f"; a pixel probe tells them from real COVID-19 at AUROC {auc(pr['real_vs_synthetic'])} (untranslated "
              f"sources {auc(pr['real_vs_untranslated'])}, two halves of real {auc(pr['real_halves'])}"
            + "".join(f", real COVID-19 of another collection ({name}) {auc(e['probe_real_vs_external'])}"
                      for name, e in (section.get("external_real") or {}).items()) + ")"
            + (f" and from held-out real COVID-19, which no discriminator saw, at {auc(pr['heldout_vs_synthetic'])} "
               f"(untranslated {auc(pr['heldout_vs_untranslated'])})" if "heldout_vs_synthetic" in pr else "") + ".")
    text += _spectrum_clause(o["spectrum"])
    corr = o["change"].get("correlation_to_source") or {}
    if corr.get("inverted_share") is not None and corr["inverted_share"] > 0.5:
        text += (f" {corr['inverted_share']:.0%} of them invert their source's intensities (median pixel correlation "
                 f"with the source {corr['median']:+.2f}): a translator shortcut, not anatomy.")
    return text


def _spectrum_clause(spectrum: dict) -> str:
    """Where the synthetic images' power spectrum sits against held-out real COVID-19, beside the real
    floor and its patient-resample interval (empty for sections without it, before 2026-12-06)."""
    ex = ((spectrum.get("excess_over_floor") or {}).get("heldout") or {}).get("synthetic") or {}
    if not ex.get("interval"):
        return ""
    lo, hi = ex["interval"]
    by = f"{ex['value']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    if lo > 0:
        return (f" Their power spectrum is farther from held-out real COVID-19 than real training images are (by {by}; "
                "artefacts or smoothing: see the spectrum figure).")
    if hi < 0:
        return f" Their power spectrum is closer to held-out real COVID-19 than real training images are (by {by})."
    return (f" Their power spectrum cannot be told from real COVID-19's on this sample (distance to held-out images "
            f"beyond real training images' {by}).")


def row(section: dict, run: str) -> dict:
    """One flat row of the overall measures, with the same columns for every run (the ablation table)."""
    o = section["overall"]
    r = {"run": run, "size": section["size"], "n_synthetic": o["n"]["synthetic"],
         "n_real_covid_train": o["n"]["real_covid_train"], "n_real_covid_heldout": o["n"]["real_covid_heldout"]}
    for name in SPACES:
        k = o["kid"].get(name)
        for col, key in (("synthetic_train", "synthetic_vs_train"), ("synthetic_heldout", "synthetic_vs_heldout"),
                         ("untranslated_heldout", "untranslated_vs_heldout"), ("floor", "floor_train_vs_heldout")):
            r[f"kid_{name}_{col}"] = k[key]["mean"] if k else None
            if col == "synthetic_heldout":
                r[f"kid_{name}_{col}_ci95"] = k[key]["interval"] if k else None
        r[f"kid_{name}_placement"] = k["placement"] if k else None
    for p in PROBES:
        r[f"probe_{p}_auroc"] = (o["probes"].get(p) or {}).get("auroc")
        r[f"probe_{p}_ci95"] = (o["probes"].get(p) or {}).get("auroc_ci95")
    sp = o["spectrum"]
    r |= {"spectral_synthetic_heldout": sp["synthetic_vs_heldout"], "spectral_untranslated_heldout": sp["untranslated_vs_heldout"],
          "spectral_floor": sp["floor_train_vs_heldout"], "spectral_placement": sp["placement"],
          "spectral_synthetic_train": sp["synthetic_vs_train"],
          "ssim_to_source_median": o["change"]["ssim_to_source"]["median"],
          "correlation_to_source_median": o["change"]["correlation_to_source"]["median"],
          "inverted_share": o["change"]["correlation_to_source"]["inverted_share"],
          "linkage_to_source_top1": (o["change"].get("linkage_to_source") or {}).get("top1"),
          "linkage_to_source_chance": (o["change"].get("linkage_to_source") or {}).get("chance_top1"),
          "cxr_encoder_sha256": (section["feature_space_notes"].get("cxr_encoder") or {}).get("sha256")}
    for ref, tag in (("heldout", ""), ("train", "_train")):  # sections before 2026-12-06 have no excess
        for who in ("synthetic", "untranslated"):
            ex = ((sp.get("excess_over_floor") or {}).get(ref) or {}).get(who) or {}
            r[f"spectral_excess{tag}_{who}"], r[f"spectral_excess{tag}_{who}_ci95"] = ex.get("value"), ex.get("interval")
    name, e = next(iter((section.get("external_real") or {}).items()), (None, None))
    r |= {"external": name, "probe_real_vs_external_auroc": e["probe_real_vs_external"].get("auroc") if e else None,
          "probe_real_vs_external_ci95": e["probe_real_vs_external"].get("auroc_ci95") if e else None,
          "spectral_external_heldout": e["spectral_vs_heldout"] if e else None}
    for space in SPACES:
        k = e["kid_vs_heldout"].get(space) if e else None
        r[f"kid_{space}_external_heldout"] = k["mean"] if k else None
    return r


def spectrum_figure(section: dict, path: Path) -> Path:
    """Mean log power per radius: synthetic, untranslated sources, real COVID-19 training and held-out."""
    from ...core.plotting import plt
    from ...core.plotting import save_figure

    m = section["overall"]["spectrum"]["mean_log_power"]
    fig, (ax, dx) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")  # room for the right panel's y label
    held = np.asarray(m["held"])[1:]
    freq = np.arange(1, len(held) + 1) / (2 * len(held))
    for key, label, style, colour in (("train", "real COVID-19 (train)", "-", "C0"), ("held", "real COVID-19 (held-out)", "--", "C1"),
                                      ("src", "untranslated sources", ":", "C2"), ("syn", "synthetic", "-", "C3")):
        y = np.asarray(m[key])[1:]
        kw = {"label": label, "lw": 1.5 if key == "syn" else 1, "color": colour}
        ax.plot(freq, y, style, **kw)
        if key != "held":
            dx.plot(freq, y - held, style, **kw)
    ax.set(xlabel="spatial frequency (cycles per pixel)", ylabel="log10 share of power",
           title="Azimuthally averaged power spectrum")
    dx.axhline(0, color="k", lw=0.5)
    dx.set(xlabel="spatial frequency (cycles per pixel)", ylabel="difference of log10 power",
           title="Minus real COVID-19 (held-out)")
    ax.legend(fontsize=8)
    return save_figure(fig, Path(path))


def report_html(section: dict | None, figure: Path | None = None) -> str:
    """The fidelity part of the audit's report section: one table per measure, baselines beside it."""
    if not section:
        return ""
    o = section["overall"]
    esc = html.escape
    ci = lambda x: "" if not x else f" [{x[0]:.3g}, {x[1]:.3g}]"
    rows = "".join(
        f"<tr><td>{esc(n)}</td><td>{_kid(k['synthetic_vs_heldout'])}{ci(k['synthetic_vs_heldout']['interval'])}</td>"
        f"<td>{_kid(k['synthetic_vs_train'])}</td><td>{_kid(k['untranslated_vs_heldout'])}{ci(k['untranslated_vs_heldout']['interval'])}</td>"
        f"<td>{_kid(k['floor_train_vs_heldout'])}{ci(k['floor_train_vs_heldout']['interval'])}</td>"
        f"<td>{_num(k['placement'], '.2f')}</td></tr>"
        for n, k in ((s, o["kid"][s]) for s in SPACES if s in o["kid"]))
    auc = lambda p: "n/a" if p.get("auroc") is None else f"{p['auroc']:.3f}" + ci(p.get("auroc_ci95"))
    pr, sp, ch = o["probes"], o["spectrum"], o["change"]
    ex = sp.get("excess_over_floor")  # sections before 2026-12-06 have none
    lk = ch.get("linkage_to_source") or {}
    link = "" if lk.get("top1") is None else (
        f". Nearest of the {lk['pool_size']} sources in pixels is the own source for {lk['top1']:.1%} of the images "
        f"(chance {lk['chance_top1']:.1%}; the privacy section asks this against every real image)")
    beyond = lambda e: (f"synthetic {e['synthetic']['value']:+.3f}{ci(e['synthetic']['interval'])}, untranslated "
                        f"{e['untranslated']['value']:+.3f}{ci(e['untranslated']['interval'])}")
    excess = "" if not ex else (
        f". Beyond real training images (the floor): {beyond(ex['heldout'])}. Against the training images instead, beyond "
        f"the held-out ones: {beyond(ex['train'])} (95% of patient resamples; an interval that holds 0 cannot be told "
        "from real)")
    img = ("" if not figure else f'<figure><img alt="spectrum" src="data:image/png;base64,'
           f'{base64.b64encode(Path(figure).read_bytes()).decode()}"><figcaption>fidelity: power spectrum</figcaption></figure>')
    return (f"<h3>Fidelity, against baselines</h3><p>{esc(sentence(section))}</p>"
            f"<p>KID (mean [95% of {o['kid'][next(iter(o['kid']))]['synthetic_vs_heldout']['repeats']} equal-size "
            f"subsamples]); placement: {esc(section['placement'])}.</p>"
            "<table><tr><th>feature space</th><th>synthetic vs held-out</th><th>synthetic vs train</th>"
            "<th>untranslated vs held-out</th><th>real train vs held-out</th><th>placement</th></tr>"
            f"{rows}</table><p>Probe AUROC (patient-grouped folds): real vs synthetic {auc(pr['real_vs_synthetic'])}; "
            f"real vs untranslated {auc(pr['real_vs_untranslated'])}; two halves of real {auc(pr['real_halves'])}; "
            f"translated vs own source {auc(pr['translated_vs_own_source'])}"
            + (f"; held-out real (no discriminator saw them) vs synthetic {auc(pr['heldout_vs_synthetic'])}, vs "
               f"untranslated {auc(pr['heldout_vs_untranslated'])}" if "heldout_vs_synthetic" in pr else "") + ".</p>"
            f"<p>Spectral distance (mean |difference| of log spectra) to held-out real COVID-19: synthetic "
            f"{sp['synthetic_vs_heldout']:.3f}, untranslated {sp['untranslated_vs_heldout']:.3f}, real training "
            f"{sp['floor_train_vs_heldout']:.3f}{excess}. SSIM to own source: median {ch['ssim_to_source']['median']:.3f}. Pixel correlation with own "
            f"source: median {_num(ch['correlation_to_source']['median'], '+.2f')}, inverted (below 0) "
            f"{_num(ch['correlation_to_source']['inverted_share'], '.0%')}{link}.</p>{_external_html(section)}{img}")


def _external_html(section: dict) -> str:
    """The "another hospital" baseline of each external set, one paragraph each."""
    esc, out = html.escape, []
    for name, e in (section.get("external_real") or {}).items():
        p = e["probe_real_vs_external"]
        ci = "" if not p.get("auroc_ci95") else f" [{p['auroc_ci95'][0]:.3g}, {p['auroc_ci95'][1]:.3g}]"
        kids = "; ".join(f"{esc(s)} {_kid(k)}" for s, k in e["kid_vs_heldout"].items())
        out.append(f"<p>Real COVID-19 of another collection ({esc(name)}, {e['n']} images, {e['patients']} patients): "
                   f"probe against real training AUROC {_num(p.get('auroc'), '.3f')}{ci}; KID against held-out: {kids}; "
                   f"spectral distance {e['spectral_vs_heldout']:.3f}. A measure that separates these as well as the "
                   "synthetic images measures the collection an image came from, not whether it is real.</p>")
    return "".join(out)


# --- a folder of translations (the ablation's held-out output) ---------------------------------------

def read_translations(folder: str | Path) -> tuple[np.ndarray, list[str], list[str]]:
    """PNG files of ``folder`` and the real record each was translated from, read from the folder's
    JSON (``sources.json``, else its only ``*.json``): ``{"a.png": "record_id", ...}``, or a list of
    ``{"file": "a.png", "record_id": "..."}`` (``source_id`` is accepted too), optionally under
    ``"images"``. Returns the pixels (uint8, N x S x S), their source ids and file names."""
    import json

    from ...core.errors import BadInputError, DataNotFoundError

    folder = Path(folder)
    js = [folder / "sources.json"] if (folder / "sources.json").is_file() else sorted(folder.glob("*.json"))
    if len(js) != 1:
        raise DataNotFoundError("need one JSON of source record ids beside the translations (sources.json)", folder,
                                f"found {len(js)} JSON files")
    try:
        doc = json.loads(js[0].read_text())
    except ValueError as exc:
        raise BadInputError(f"not valid JSON: {exc}", js[0]) from exc
    doc = doc.get("images", doc) if isinstance(doc, dict) and "images" in doc else doc
    if isinstance(doc, dict):
        pairs = sorted(doc.items())
    elif isinstance(doc, list) and all(isinstance(d, dict) and "file" in d for d in doc):
        pairs = [(d["file"], d.get("record_id", d.get("source_id"))) for d in doc]
    else:
        raise BadInputError("expected {file: record_id} or a list of {file, record_id}", js[0])
    bad = [f for f, r in pairs if not isinstance(r, str) or not (folder / f).is_file()]
    if bad or not pairs:
        raise BadInputError("a listed translation has no file or no record id" if bad else "no translations listed",
                            folder / (bad[0] if bad else js[0].name))
    images = [np.asarray(Image.open(folder / f).convert("L"), dtype=np.uint8) for f, _ in pairs]
    if len({im.shape for im in images}) != 1 or images[0].shape[0] != images[0].shape[1]:
        raise BadInputError("translations must all be square and of one size", folder,
                            f"sizes: {sorted({im.shape for im in images})[:3]}")
    return np.stack(images), [r for _, r in pairs], [f for f, _ in pairs]

