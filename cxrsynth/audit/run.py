"""Auditing a release: privacy and quality, per config and overall, with a verdict per test.

Reads the release folder (parquet shards), its private mapping (``<release>.private``), and the work
folder (records, splits, plan, the private reverse generators). Writes into ``WORKDIR/audit``:
``audit.json`` (``manifests/audit.schema.json``), ``per_image.csv`` (every score of every synthetic
image, to filter a release with), ``figures/*.png``, ``report_section.html`` (picked up by the
benchmark report) and, when asked, ``exclude_ids.txt`` (the images closest to their sources).
``cxrsynth release`` puts ``audit.json``'s summary into the dataset card.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from scipy.stats import binomtest

from .. import __version__
from ..config import to_dict
from ..errors import DataNotFoundError
from ..images import load_canonical
from ..paths import atomic_write, read_json, write_json
from ..records import read_records
from ..schemas import validate
from . import privacy as P
from . import quality as Q
from .embed import embed, make_embedding

# Verdict thresholds, stated in the card in plain words.
LINKAGE_MIN_TOP1 = 0.02  # and significantly above chance (binomial, p < 0.01)
MARGIN_MAX_SHARE = 0.5  # most synthetic images more like their own source than any other real image
DCR_MAX_SHARE = 0.10  # share below the held-out 5th percentile (5% expected)
AUTHENTIC_MIN_SHARE = 0.5
COPY_MAX_SSIM = 0.95
INVERSE_MAX_SSIM = 0.8


@dataclass(frozen=True)
class AuditConfig:
    embedding: str = "auto"  # auto | pixels | classifier:PATH (a benchmark model.safetensors)
    shortlist: int = 10  # real images compared by SSIM per synthetic image (nearest by embedding)
    prdc_k: int = 5
    max_images: int | None = None  # per config (quick looks)
    exclude_closest: float = 0.0  # write exclude_ids.txt with this share of images closest to their source


def _decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.uint8)


def read_release_images(release: Path, max_images: int | None) -> dict[str, tuple[list[str], np.ndarray]]:
    out: dict = {}
    for shard in sorted((release / "data").glob("*.parquet")):
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=256, columns=["id", "image", "config"]):
            for row in batch.to_pylist():
                ids, imgs = out.setdefault(row["config"], ([], []))
                if max_images is None or len(ids) < max_images:
                    ids.append(row["id"])
                    imgs.append(_decode_png(row["image"]["bytes"]))
    if not out:
        raise DataNotFoundError("no images in the release", release)
    return {c: (ids, np.stack(imgs)) for c, (ids, imgs) in out.items()}


def _auto_embedding(workdir: Path) -> str:
    runs = sorted((workdir / "benchmark" / "runs").glob("*/real/seed-0/model.safetensors"))
    return f"classifier:{runs[0]}" if runs else "pixels"


def verdicts(summary: dict) -> list[dict]:
    v = []
    lk = summary["linkage"]
    p = binomtest(round(lk["top1"] * lk["n"]), lk["n"], lk["chance_top1"], alternative="greater").pvalue if lk["n"] else 1
    flagged = lk["top1"] >= LINKAGE_MIN_TOP1 and p < 0.01
    v.append({"name": "source linkage", "flagged": flagged,
              "verdict": "LINKABLE" if flagged else "not linkable by this test",
              "detail": f"nearest-neighbour search finds the own source of {100 * lk['top1']:.1f}% of synthetic images "
                        f"(top-5 {100 * lk['top5']:.1f}%; chance {100 * lk['chance_top1']:.2f}%); flagged at >= "
                        f"{100 * LINKAGE_MIN_TOP1:.0f}% and p < 0.01 against chance"})
    m = summary["similarity"]["share_positive_margin"]
    v.append({"name": "similarity to own source", "flagged": m > MARGIN_MAX_SHARE,
              "verdict": "TOO CLOSE" if m > MARGIN_MAX_SHARE else "no closer to the source than to others",
              "detail": f"{100 * m:.1f}% of synthetic images are more similar (SSIM) to their own source than to any other "
                        f"shortlisted real image; median SSIM to source {summary['similarity']['ssim_source_median']:.3f}; "
                        f"flagged above {100 * MARGIN_MAX_SHARE:.0f}%"})
    d = summary["dcr"]["share_below_heldout_p5"]
    v.append({"name": "distance to closest record", "flagged": d is not None and d > DCR_MAX_SHARE,
              "verdict": "MEMORISATION SUSPECTED" if d is not None and d > DCR_MAX_SHARE else "as far as new real images",
              "detail": f"{100 * (d or 0):.1f}% of synthetic images are closer to a training image than the closest 5% of "
                        f"held-out real images (5% expected); flagged above {100 * DCR_MAX_SHARE:.0f}%"})
    a = summary["dcr"]["authentic_share"]
    v.append({"name": "authenticity (Alaa et al. 2022)", "flagged": a is not None and a < AUTHENTIC_MIN_SHARE,
              "verdict": "MOSTLY INAUTHENTIC" if a is not None and a < AUTHENTIC_MIN_SHARE else "mostly authentic",
              "detail": f"{100 * (a or 0):.1f}% authentic; flagged below {100 * AUTHENTIC_MIN_SHARE:.0f}%"})
    c = summary["copying"]["max_ssim"]
    v.append({"name": "copying of COVID-19 training images", "flagged": c is not None and c > COPY_MAX_SSIM,
              "verdict": "COPY FOUND" if c is not None and c > COPY_MAX_SSIM else "no near copy",
              "detail": f"highest SSIM to a COVID-19 image the translators saw: {c if c is None else round(c, 3)}; "
                        f"flagged above {COPY_MAX_SSIM}"})
    inv = summary["inverse"]["ssim_median"]
    v.append({"name": "inverse recovery (private reverse generator)", "flagged": inv is not None and inv > INVERSE_MAX_SSIM,
              "verdict": "RECOVERABLE" if inv is not None and inv > INVERSE_MAX_SSIM else
              ("not recoverable" if inv is not None else "not measured"),
              "detail": ("reverse generator unavailable" if inv is None else
                         f"median SSIM between the reverse translation of a synthetic image and its source: {inv:.3f}; "
                         f"flagged above {INVERSE_MAX_SSIM}")})
    return v


def _inverse(workdir: Path, config: str, syn: np.ndarray) -> np.ndarray | None:
    from ..generate import CONFIG_TASK, translate_batch
    from ..translate.checkpoint import load_generator

    path = workdir / "translators" / CONFIG_TASK[config] / "private" / "reverse_generator.safetensors"
    if not path.is_file():
        return None
    net, info = load_generator(path)
    size = int(info["arch"].get("size", syn.shape[-1]))
    x = syn if syn.shape[-1] == size else np.stack([np.asarray(Image.fromarray(a).resize((size, size))) for a in syn])
    out = np.concatenate([translate_batch(net, torch.from_numpy(x[i:i + 16]).unsqueeze(1), torch.device("cpu"), None, False)
                          for i in range(0, len(x), 16)])
    if out.shape[-1] != syn.shape[-1]:
        out = np.stack([np.asarray(Image.fromarray(a).resize(syn.shape[1:][::-1])) for a in out])
    return out


def _summarise(link, dcr, sim, copy_ssim, copy_dcr, inv_ssim, closer) -> dict:
    return {
        "linkage": {"n": len(link["ranks"]), "pool_size": link["pool_size"], "top1": link["top1"], "top5": link["top5"],
                    "mrr": link["mrr"], "chance_top1": link["chance_top1"], "chance_top5": link["chance_top5"],
                    "chance_mrr": link["chance_mrr"]},
        "similarity": {"ssim_source_median": sim["ssim_source_median"], "psnr_source_median": sim["psnr_source_median"],
                       "share_positive_margin": sim["share_positive_margin"],
                       "margin_median": float(np.median(sim["margin"]))},
        "dcr": {"synthetic_p5": dcr["synthetic_p5"], "heldout_p5": dcr["heldout_p5"],
                "share_below_heldout_p5": dcr["share_below_heldout_p5"], "nndr_median": dcr["nndr_median"],
                "authentic_share": dcr["authentic_share"], "closer_to_training_share": closer},
        "copying": {"max_ssim": float(copy_ssim.max()) if len(copy_ssim) else None,
                    "median_ssim": float(np.median(copy_ssim)) if len(copy_ssim) else None,
                    "min_dcr": float(copy_dcr.min()) if len(copy_dcr) and np.isfinite(copy_dcr).any() else None},
        "inverse": {"ssim_median": float(np.median(inv_ssim)) if inv_ssim is not None else None},
    }


def _pooled(parts: list, n_pool: int) -> tuple:
    """The measures of every config pooled, in the arguments :func:`_summarise` takes (closer share aside)."""
    cat = lambda i, key: np.concatenate([p[i][key] for p in parts])  # noqa: E731
    link = P.rank_summary(cat(0, "ranks"), n_pool)
    dcr = P.dcr_summary(cat(1, "dcr"), cat(1, "nndr"), cat(1, "authentic"), parts[0][1]["dcr_heldout"])
    sim = P.similarity_summary(cat(2, "ssim_source"), cat(2, "psnr_source"), cat(2, "ssim_best_other"), cat(2, "margin"))
    inv = None if any(p[5] is None for p in parts) else np.concatenate([p[5] for p in parts])
    return link, dcr, sim, np.concatenate([p[3] for p in parts]), np.concatenate([p[4] for p in parts]), inv


def _release_stamp(release: Path) -> dict:
    """Name, version and ``data_sha256`` (the fingerprint of its shards) of the release audited."""
    from ..release.package import data_fingerprint

    manifest = read_json(release / "manifest.json")
    return {"name": manifest.get("name"), "version": manifest.get("version"),
            "data_sha256": manifest.get("data_sha256") or data_fingerprint(manifest)}


def audit(release: str | Path, workdir: str | Path, cfg: AuditConfig = AuditConfig(), private: str | Path | None = None,
          out_dir: str | Path | None = None, embedding=None) -> dict:
    from . import figures

    release, workdir = Path(release), Path(workdir)
    out = Path(out_dir) if out_dir else workdir / "audit"
    private = Path(private) if private else release.parent / f"{release.name}.private"
    if not (private / "mapping.jsonl").is_file():
        raise DataNotFoundError("the private id mapping is needed to audit linkage", private / "mapping.jsonl",
                                "pass --private DIR (the folder `cxrsynth release` wrote beside the release)")
    mapping = {m["id"]: m["record_id"] for m in map(json.loads, (private / "mapping.jsonl").read_text().splitlines())}
    spec = embedding if embedding is not None else (_auto_embedding(workdir) if cfg.embedding == "auto" else cfg.embedding)
    module = make_embedding(spec)
    emb_name = getattr(module, "name", type(module).__name__)
    syn = read_release_images(release, cfg.max_images)
    size = next(iter(syn.values()))[1].shape[-1]
    records = {r.record_id: r for r in read_records(workdir / "records.parquet") if r.has_pixels}
    assign = read_json(workdir / "splits.json")["assignments"]
    plan = read_json(workdir / "plan.json")

    def load(ids):
        ids = [i for i in ids if i in records]
        return ids, (np.stack([load_canonical(records[i].path, size) for i in ids]) if ids else np.zeros((0, size, size), np.uint8))

    train_ids, train_px = load(sorted(i for i in records if assign.get(i) == "train"))
    held_ids, held_px = load(sorted(i for i in records if assign.get(i) == "test"))
    covid_train = sorted({i for t in plan["tasks"].values() for i in t["translator_train"]["covid"]})
    ct_ids, ct_px = load(covid_train)
    e_train, e_held, e_ct = embed(module, train_px), embed(module, held_px), embed(module, ct_px)
    pos = {rid: k for k, rid in enumerate(train_ids)}
    per_config, rows, all_parts = {}, [], []
    for config, (ids, px) in sorted(syn.items()):
        keep = [k for k, i in enumerate(ids) if mapping.get(i) in pos]
        if len(keep) < len(ids):
            raise DataNotFoundError(f"{len(ids) - len(keep)} synthetic images have no train-split source in this work folder",
                                    config, "audit with the work folder the release was made from")
        src = np.array([pos[mapping[i]] for i in ids])
        e_syn = embed(module, px)
        link = P.linkage(e_syn, e_train, src)
        dc = P.dcr(e_syn, e_train, e_held)
        sim = P.source_similarity(px, train_px, e_syn, e_train, src, cfg.shortlist)
        copy_ssim, copy_dcr = P.max_ssim_against(px, ct_px, e_syn, e_ct, cfg.shortlist)
        inv = _inverse(workdir, config, px)
        inv_ssim = None if inv is None else np.array([P.ssim(inv[k], train_px[src[k]]) for k in range(len(px))])
        closer = P.closer_to_training(e_syn, e_train, e_held)
        per_config[config] = _summarise(link, dc, sim, copy_ssim, copy_dcr, inv_ssim, closer)
        all_parts.append((link, dc, sim, copy_ssim, copy_dcr, inv_ssim, e_syn, px, src))
        for k, i in enumerate(ids):
            rows.append({"id": i, "config": config, "linkage_rank": int(link["ranks"][k]),
                         "ssim_source": round(float(sim["ssim_source"][k]), 5),
                         "ssim_best_other": round(float(sim["ssim_best_other"][k]), 5),
                         "margin": round(float(sim["margin"][k]), 5), "dcr": round(float(dc["dcr"][k]), 5),
                         "nndr": round(float(dc["nndr"][k]), 5), "authentic": bool(dc["authentic"][k]),
                         "max_ssim_covid_train": round(float(copy_ssim[k]), 5),
                         "inverse_ssim": None if inv_ssim is None else round(float(inv_ssim[k]), 5)})
    overall = _summarise(*_pooled(all_parts, n_pool=len(train_ids)), P.closer_to_training(
        np.concatenate([p[6] for p in all_parts]), e_train, e_held))
    # quality
    all_syn = np.concatenate([px for _, px in syn.values()])
    e_all = embed(module, all_syn)
    covid_real_ids = [i for i in (train_ids + held_ids) if records[i].label == "covid"]
    idx_all = {i: k for k, i in enumerate(train_ids + held_ids)}
    real_px = np.concatenate([train_px, held_px])
    e_real = np.concatenate([e_train, e_held])
    by_label = {lab: [idx_all[i] for i in (train_ids + held_ids) if records[i].label == lab] for lab in ("normal", "pneumonia", "covid")}
    covid_idx = by_label["covid"]
    quality = {
        "extractor": emb_name,
        "synthetic_vs_real_covid": {**Q.fid_kid(real_px[covid_idx], all_syn, module), **Q.prdc(e_real[covid_idx], e_all, cfg.prdc_k)},
        "reference_pairs": {f"{lab}_vs_covid": Q.fid_kid(real_px[covid_idx], real_px[by_label[lab]], module)
                            for lab in ("normal", "pneumonia") if by_label[lab]},
        "pixels": {"synthetic": Q.pixel_stats(all_syn), "real_covid": Q.pixel_stats(real_px[covid_idx]) if covid_idx else None},
    }
    per_cfg_quality = {c: Q.fid_kid(real_px[covid_idx], px, module) for c, (_, px) in syn.items()}
    summary_v = verdicts(overall)
    flagged = [v["name"] for v in summary_v if v["flagged"]]
    text = (f"Audited {len(rows):,} synthetic images against {len(train_ids):,} real training images and "
            f"{len(held_ids):,} held-out real images, with the embedding: {emb_name}. "
            + (f"**Flagged: {', '.join(flagged)}.** Do not treat these images as anonymous." if flagged else
               "No test flagged the images; this is evidence, not proof, of anonymity (other attacks exist)."))
    result = {
        "kind": "cxrsynth.audit", "code_version": __version__, "config": to_dict(cfg), "release": str(release.name),
        # the stamp a card checks before it shows these results: which images were audited
        "audited_release": _release_stamp(release),
        "embedding": emb_name, "counts": {c: len(ids) for c, (ids, _) in syn.items()},
        "pools": {"train": len(train_ids), "heldout": len(held_ids), "covid_translator_train": len(ct_ids),
                  "covid_real": len(covid_real_ids)},
        "privacy": {"overall": overall, "per_config": per_config},
        "quality": {**quality, "per_config_fid_kid": per_cfg_quality},
        "thresholds": {"linkage_min_top1": LINKAGE_MIN_TOP1, "margin_max_share": MARGIN_MAX_SHARE,
                       "dcr_max_share": DCR_MAX_SHARE, "authentic_min_share": AUTHENTIC_MIN_SHARE,
                       "copy_max_ssim": COPY_MAX_SSIM, "inverse_max_ssim": INVERSE_MAX_SSIM},
        "summary": {"text": text, "verdicts": summary_v, "flagged": flagged},
    }
    validate(result, "audit")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "audit.json", result)
    with atomic_write(out / "per_image.csv") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if cfg.exclude_closest > 0:
        worst = sorted(rows, key=lambda r: (r["linkage_rank"], -r["margin"]))[: int(round(cfg.exclude_closest * len(rows)))]
        with atomic_write(out / "exclude_ids.txt") as fh:
            fh.write("".join(f"{r['id']}\n" for r in worst))
    figs = figures.write_all(out / "figures", all_parts, train_px, dcr_held=all_parts[0][1]["dcr_heldout"])
    figures.report_section(out / "report_section.html", result, figs)
    return result
