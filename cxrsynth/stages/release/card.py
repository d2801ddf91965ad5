"""The dataset card: Hugging Face YAML front matter built with ``huggingface_hub.DatasetCardData`` and the
``datasets`` metadata helpers (configs, dataset_info), and a body rendered from ``cards/dataset_card.md``.

The card can be rendered again from ``manifest.json`` alone (``rerender``): at push time with the real
repo id, and by ``cxrsynth diff`` with a "Changes" section. Sections made from files outside the
release (the benchmark tables) are carried over from the card already there.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ...core.cards import render
from ...artifacts.release_folder import NOT_IN_SUMS, as_release
from ...core.vocab import SOURCE_LABEL
from ...core.paths import atomic_write, write_json, write_sha256sums
from .access import access_paragraph, contact_section
from .features import features, image_format
from ...data.sources.terms import NO_LICENCE, PAPER_BIBTEX, SOURCE_TERMS, SOURCES, dataset_bibtex

KEPT_SECTIONS = ("Benchmark", "Changes")  # carried over when the card is rendered again
NO_CHANGES = "The first version, or no earlier version was compared (`cxrsynth diff OLD NEW` writes this section)."


def size_category(n: int) -> str:
    """The Hub's size category of ``n`` examples (the ``datasets`` list: n<1K, 1K<n<10K, ... n>1T)."""
    bounds = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
              (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))
    return next((name for hi, name in bounds if n < hi), "n>1T")


def gated_fields(license_id: str) -> tuple[str, dict]:
    """The access-request prompt and the fields a requester must tick (the Hub's extra_gated_* keys)."""
    prompt = ("These synthetic chest X-rays derive from real patients' X-rays and may be linkable to them. "
              "Access is for research only; it is not for clinical use.")
    return prompt, {
        "I will use this dataset for research only, never for clinical decisions": "checkbox",
        "I will not attempt to re-identify any person from these images or link them to their sources": "checkbox",
        f"I accept the licence ({license_id}) and the attribution requirements of the sources": "checkbox",
    }


def front_matter(manifest: dict, repo_id: str | None = None, access: str | None = None):
    """The card's metadata as a ``DatasetCardData``: configs and dataset_info through ``datasets``' own
    helpers, so the YAML has the shapes ``load_dataset`` reads. ``repo_id`` and ``access`` (the repo's
    setting as read back at push) are recorded under ``cxrsynth:`` so that verify renders the same card."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    feats = features()

    def info(n_bytes: int, n: int) -> DatasetInfo:
        splits = SplitDict()
        splits.add(SplitInfo(name="train", num_bytes=n_bytes, num_examples=n))
        return DatasetInfo(features=feats, splits=splits, dataset_size=n_bytes, download_size=n_bytes)

    configs = {"all": {"default": True, "data_files": [{"split": "train", "path": "data/*.parquet"}]}}
    infos = {"all": info(sum(c["num_bytes"] for c in manifest["configs"].values()), manifest["counts"]["all"])}
    for name, c in manifest["configs"].items():
        configs[name] = {"data_files": [{"split": "train", "path": f"data/{name}-*.parquet"}]}
        infos[name] = info(c["num_bytes"], c["num_examples"])
    prompt, fields = gated_fields(manifest["license"])
    hub_ids = sorted({SOURCES[s["source"]]["hub_id"] for s in manifest["sources"]} - {None})
    card = DatasetCardData(
        pretty_name=manifest["pretty_name"], license=manifest["license"],
        task_categories=["image-classification"], size_categories=[size_category(manifest["counts"]["all"])],
        source_datasets=hub_ids or None, annotations_creators=["machine-generated"],
        tags=["medical", "chest-x-ray", "covid-19", "synthetic", "cyclegan", "image-to-image-translation"],
        extra_gated_prompt=prompt, extra_gated_fields=fields,
        cxrsynth={"version": manifest["version"], "counts": manifest["counts"], "code_version": manifest["code_version"],
                  **({"repo_id": repo_id} if repo_id else {}), **({"access": access} if access else {})},
    )
    if manifest["license"] == "other":  # the Hub then wants a name and a link: the card's Licence section
        card.license_name = "cxrsynth-mixed-inputs"
        card.license_link = "README.md"
    MetadataConfigs(configs).to_dataset_card_data(card)
    DatasetInfosDict(infos).to_dataset_card_data(card)
    return card


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in d.items()) or "none"


def _arch(a: dict) -> str:
    """A generator's ``arch`` in words, for manifests without the translator card's words."""
    if not a:
        return "architecture not recorded"
    up = f", {a['upsample']} resize-convolution upsampling" if a.get("upsample") else ""
    if a.get("name") == "unet_generator":
        return f"U-Net generator, width {a.get('base')}{up}"
    blocks = f", {a['blocks']} residual blocks" if a.get("blocks") else ""
    return f"ResNet generator{blocks}, width {a.get('base')}{up}"


def transposed_upsampling(t: dict) -> bool:
    """Whether a translator's generator upsamples by transposed convolution (the ResNet's own way), the
    cause of checkerboard artefacts; a U-Net or a resize-convolution cannot paint them."""
    arch = t.get("arch") or {}
    return bool(arch) and arch.get("name", "resnet_generator") == "resnet_generator" and \
        arch.get("upsample", "transposed") == "transposed"


def translator_line(t: dict) -> str:
    """One translator of the manifest in the card's words: recipe, architecture, objective, what it learnt
    from and at which size, and how far it trained. Only what the manifest records is said."""
    from ..translate.card import PRESET_WORDS

    arch, recipe = t.get("arch") or {}, t.get("recipe") or {}
    preset = t.get("preset") or arch.get("preset")
    size = recipe.get("size") or arch.get("size")
    parts = [f"`{preset}` recipe ({PRESET_WORDS[preset]})" if preset in PRESET_WORDS else "recipe not recorded",
             t.get("architecture") or _arch(arch)]
    if recipe.get("gan_loss"):
        parts.append(f"{recipe['gan_loss']} GAN loss, cycle weight {recipe.get('lambda_cycle')}, identity weight "
                     f"{recipe.get('lambda_identity')} x cycle, batch {recipe.get('batch_size')}")
    tr = t["train_images"]
    parts.append(f"learnt from {tr['source']:,} {SOURCE_LABEL[t['config']]} + {tr['covid']:,} COVID-19 images"
                 + (f" at {size}x{size} px" if size else ""))
    parts.append(f"{t.get('steps')} of {t.get('total_steps')} steps, seed {t.get('seed')}")
    return f"  - `{t['config']}` ({t['task']}): " + "; ".join(parts)


def _licence_section(manifest: dict) -> tuple[str, str, str]:
    lic = manifest.get("licensing") or {}
    learnt = lic.get("learnt_from", {})
    table = "\n".join(f"| {name} | {n:,} |" for name, n in learnt.items()) or f"| {NO_LICENCE} | 0 |"
    per_translator = "; ".join(f"`{t['config']}`: {_counts(t['train_images'].get('covid_licences', {}))}"
                               for t in manifest["translators"])
    excluded = lic.get("excluded_at_ingest") or {}
    note = (f"Per translator: {per_translator}. "
            + (f"Left out at ingest by the licence allow-list: {_counts(excluded)}."
               if excluded else "No image was left out at ingest because of its licence."))
    attribution = "\n".join(f"  - {s['name']}: {s.get('attribution') or SOURCES[s['source']]['attribution']}"
                            for s in manifest["sources"])
    return table, note, attribution


def card_body(manifest: dict, repo_id: str | None = None, kept: dict[str, str] | None = None,
              access: str | None = None) -> str:
    kept = kept or {}
    rows = [f"| `{c}` | {SOURCE_LABEL[c]} | {info['num_examples']:,} | `{t['translator_id']}` | `{t['generator_sha256'][:16]}...` |"
            for (c, info), t in zip(manifest["configs"].items(), manifest["translators"])]
    sources = [f"  - {s['name']} ({s['url']}): {s['images_used']:,} images used ({_counts(s['by_label'])}); "
               f"terms: {s['licence']}"
               + ("" if s["source"] in SOURCE_TERMS else f"; by licence: {_counts(s.get('licences', {}))}")
               + f"; cite: {s['citation']}" for s in manifest["sources"]]
    trans = [translator_line(t) for t in manifest["translators"]]
    configs = list(manifest["configs"])
    bib = [PAPER_BIBTEX] + [SOURCES[s["source"]]["bibtex"] for s in manifest["sources"] if SOURCES[s["source"]]["bibtex"]]
    lic = manifest.get("licensing") or {}
    why = lic.get("why", "")
    if lic.get("derived") and lic["derived"] != manifest["license"]:
        why += f" (The licence was set by the maintainers; the inputs alone would give {lic['derived']}.)"
    table, excluded_note, attribution = _licence_section(manifest)
    return render("dataset_card.md", {
        "pretty_name": manifest["pretty_name"], "total": f"{manifest['counts']['all']:,}", "version": manifest["version"],
        "code_version": manifest["code_version"], "name": manifest["name"],
        "first_row": configs[0] + " (" + SOURCE_LABEL[configs[0]] + " -> COVID-19)",
        "second_row": (configs[1] + " (" + SOURCE_LABEL[configs[1]] + " -> COVID-19)") if len(configs) > 1 else "-",
        "config_table": "\n".join(rows), "sources_list": "\n".join(sources), "split_method": manifest["split_method"],
        "split_note": "patient-level train / validation / test" if manifest["split_method"] == "rigorous"
        else "the original row-order rule, not patient-level",
        "per_domain": manifest["plan"]["per_domain"], "plan_seed": manifest["plan"]["seed"],
        "translator_list": "\n".join(trans),
        "image_format": image_format(manifest),
        "training_sets": "; ".join(f"`{t['config']}` {t['train_images']['source']:,} {SOURCE_LABEL[t['config']]} + "
                                   f"{t['train_images']['covid']:,} COVID-19" for t in manifest["translators"]),
        "artefact_note": ("; images of the ResNet generator's transposed convolutions may show checkerboard artefacts"
                          if any(transposed_upsampling(t) for t in manifest["translators"]) else ""),
        "generation_note": ("every train-split source image named by the release plan was translated once"
                            if manifest["counts"]["all"] + (manifest.get("filtered") or {}).get("removed", 0)
                            >= sum(manifest["plan"]["planned"][c] for c in configs)
                            else "a partial release: only part of the train-split source images named by the plan "
                                 "were translated (each once)"),
        "planned_note": ", ".join(f"{c}: {manifest['counts'][c]:,} made of {manifest['plan']['planned'][c]:,} planned"
                                  for c in configs),
        "license": manifest["license"], "license_why": why, "licence_table": table,
        "licence_excluded": excluded_note, "attribution_list": attribution,
        "access_paragraph": access_paragraph(access), "contact_section": contact_section(manifest.get("contact")),
        "audit_section": _audit_section(manifest.get("audit"), manifest.get("filtered")),
        "benchmark_section": kept.get("Benchmark") or "No benchmark was run for this version (`cxrsynth benchmark` produces one).",
        "changes_section": kept.get("Changes") or NO_CHANGES,
        "load_id": repo_id or manifest["name"],
        "load_note": "" if repo_id else (f"\nHere `{manifest['name']}` is the release folder (run from its parent "
                                         f"directory); on the Hub use `ORG/{manifest['name']}`."),
        "dataset_bibtex": dataset_bibtex(manifest, repo_id), "bibtex": "\n\n".join(bib),
    })


def card_text(manifest: dict, repo_id: str | None = None, kept: dict[str, str] | None = None,
              access: str | None = None) -> str:
    return ("---\n" + front_matter(manifest, repo_id, access).to_yaml() + "\n---\n\n"
            + card_body(manifest, repo_id, kept, access))


def _audit_section(audit: dict | None, filtered: dict | None = None) -> str:
    if filtered:
        removed = (f"\n\n**{filtered['removed']:,} images were removed after the audit**: {filtered['reason']}. "
                   "The counts above are after the removal.")
    else:
        removed = "\n\nNo images were removed after the audit." if audit else ""
    if not audit:
        return ("**Not yet audited.** No quality or privacy audit was run for this version: do not assume the "
                "images are unlinkable to their sources." + removed)
    lines = [audit.get("text", ""), ""]
    if audit.get("fidelity"):  # one sentence from the audit's fidelity section (audit/fidelity.py)
        lines += [f"**Fidelity.** {audit['fidelity']}", ""]
    from ..audit.verdicts import caveat_after

    for test in audit.get("verdicts", []):
        lines.append(f"- **{test['name']}**: {test['verdict']} ({test['detail']})")
        if caveat_after(test):  # the distance verdicts on images off the real manifold: say what they mean
            lines.append(f"  - *{caveat_after(test)}*")
    return "\n".join(lines) + removed


def render_dataset_card(path: Path, manifest: dict, benchmark: str | None = None, repo_id: str | None = None) -> Path:
    """Write the card; ``benchmark`` (the tables of a benchmark stamped with this release, checked by the
    caller) is its Benchmark section, else the one of the card already there is kept."""
    kept = sections(Path(path).read_text()) if Path(path).is_file() else {}
    if benchmark:
        kept["Benchmark"] = benchmark
    with atomic_write(path) as fh:
        fh.write(card_text(manifest, repo_id, kept))
    return path


def sections(card: str) -> dict[str, str]:
    """The text of the card's ``## `` sections that are carried over (Benchmark, Changes), by title."""
    out = {}
    for m in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", card, flags=re.S | re.M):
        if m.group(1).strip() in KEPT_SECTIONS:
            out[m.group(1).strip()] = m.group(2).strip()
    return out


def rerender(release: Path, repo_id: str | None = None, changes: str | None = None, access: str | None = None) -> None:
    """Render README.md and croissant.json again from the release's manifest (with the repo id and the
    repo's access as read back at push, or a Changes section), then SHA256SUMS, so the folder still verifies."""
    from .croissant import make_croissant

    folder = as_release(release)
    manifest = folder.manifest()
    kept = sections(folder.card.read_text()) if folder.card.is_file() else {}
    if changes is not None:
        kept["Changes"] = changes
    with atomic_write(folder.card) as fh:
        fh.write(card_text(manifest, repo_id, kept, access))
    write_json(folder.croissant, make_croissant(manifest, repo_id, access))
    write_sha256sums(folder.root, NOT_IN_SUMS)


def read_front_matter(path: Path) -> dict:
    text = Path(path).read_text()
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    return yaml.safe_load(text[4:end]) if end > 0 else {}
