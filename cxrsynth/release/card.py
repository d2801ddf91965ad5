"""The dataset card: Hugging Face YAML front matter (configs, features, splits, licence, sources, tags)
built from the manifest, and a body rendered from ``cards/dataset_card.md``."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..cards import render
from ..paths import atomic_write
from .sources_meta import PAPER_BIBTEX, RELEASE_LICENSE_WHY, SOURCES

SOURCE_LABEL = {"g_nc": "normal", "g_pc": "pneumonia"}


def size_category(n: int) -> str:
    for hi, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < hi:
            return name
    return "n>1M"


def front_matter(manifest: dict) -> dict:
    import datasets

    from .package import features

    feats = datasets.DatasetInfo(features=features())._to_yaml_dict()["features"]
    configs = [{"config_name": "all", "default": True,
                "data_files": [{"split": "train", "path": "data/*.parquet"}]}]
    infos = [{"config_name": "all", "features": feats,
              "splits": [{"name": "train", "num_bytes": sum(c["num_bytes"] for c in manifest["configs"].values()),
                          "num_examples": manifest["counts"]["all"]}]}]
    for name, c in manifest["configs"].items():
        configs.append({"config_name": name, "data_files": [{"split": "train", "path": f"data/{name}-*.parquet"}]})
        infos.append({"config_name": name, "features": feats,
                      "splits": [{"name": "train", "num_bytes": c["num_bytes"], "num_examples": c["num_examples"]}]})
    return {
        "pretty_name": manifest["pretty_name"], "license": manifest["license"],
        "task_categories": ["image-classification"],
        "tags": ["medical", "chest-x-ray", "covid-19", "synthetic", "cyclegan", "image-to-image-translation"],
        "size_categories": [size_category(manifest["counts"]["all"])],
        "source_datasets": [SOURCES[s["source"]]["hub_name"] for s in manifest["sources"]],
        "configs": configs, "dataset_info": infos,
        "cxrsynth": {"version": manifest["version"], "counts": manifest["counts"], "code_version": manifest["code_version"]},
    }


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
    for test in audit.get("verdicts", []):
        lines.append(f"- **{test['name']}**: {test['verdict']} ({test['detail']})")
    return "\n".join(lines) + removed


def _benchmark_section(workdir: Path) -> str:
    table = workdir / "benchmark" / "tables.md"
    if table.is_file():
        return table.read_text()
    return "No benchmark was run for this version (`cxrsynth benchmark` produces one)."


def render_dataset_card(path: Path, manifest: dict, workdir: Path | None = None) -> Path:
    rows = [f"| `{c}` | {SOURCE_LABEL[c]} | {info['num_examples']:,} | `{t['translator_id']}` | `{t['generator_sha256'][:16]}...` |"
            for (c, info), t in zip(manifest["configs"].items(), manifest["translators"])]
    sources = [f"  - {s['name']} ({s['url']}): {s['images_used']:,} images used ({s['by_label']}); licence: {s['licence']}; "
               f"cite: {s['citation']}" for s in manifest["sources"]]
    trans = [f"  - `{t['config']}` ({t['task']}): {t['train_images']['source']} + {t['train_images']['covid']} images, "
             f"{t.get('steps')} of {t.get('total_steps')} steps, seed {t.get('seed')}, arch {t.get('arch')}"
             for t in manifest["translators"]]
    configs = list(manifest["configs"])
    bib = [PAPER_BIBTEX] + [SOURCES[s["source"]]["bibtex"] for s in manifest["sources"] if SOURCES[s["source"]]["bibtex"]]
    body = render("dataset_card.md", {
        "pretty_name": manifest["pretty_name"], "total": f"{manifest['counts']['all']:,}", "version": manifest["version"],
        "code_version": manifest["code_version"], "name": manifest["name"],
        "first_row": configs[0] + " (" + SOURCE_LABEL[configs[0]] + " -> COVID-19)",
        "second_row": (configs[1] + " (" + SOURCE_LABEL[configs[1]] + " -> COVID-19)") if len(configs) > 1 else "-",
        "config_table": "\n".join(rows), "sources_list": "\n".join(sources), "split_method": manifest["split_method"],
        "split_note": "patient-level train / validation / test" if manifest["split_method"] == "rigorous"
        else "the original row-order rule, not patient-level",
        "per_domain": manifest["plan"]["per_domain"], "plan_seed": manifest["plan"]["seed"],
        "translator_list": "\n".join(trans),
        "size": next((t["arch"].get("size") for t in manifest["translators"] if t.get("arch")), 256),
        "generation_note": ("every train-split source image named by the release plan was translated once"
                            if manifest["counts"]["all"] + (manifest.get("filtered") or {}).get("removed", 0)
                            >= sum(manifest["plan"]["planned"][c] for c in configs)
                            else "a partial release: only part of the train-split source images named by the plan "
                                 "were translated (each once)"),
        "planned_note": ", ".join(f"{c}: {manifest['counts'][c]:,} made of {manifest['plan']['planned'][c]:,} planned"
                                  for c in configs),
        "license": manifest["license"], "license_why": RELEASE_LICENSE_WHY,
        "audit_section": _audit_section(manifest.get("audit"), manifest.get("filtered")),
        "benchmark_section": _benchmark_section(workdir) if workdir else "No benchmark was run for this version.",
        "bibtex": "\n\n".join(bib),
    })
    text = "---\n" + yaml.safe_dump(front_matter(manifest), sort_keys=False, allow_unicode=True) + "---\n\n" + body
    with atomic_write(path) as fh:
        fh.write(text)
    return path


def read_front_matter(path: Path) -> dict:
    text = Path(path).read_text()
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    return yaml.safe_load(text[4:end]) if end > 0 else {}


