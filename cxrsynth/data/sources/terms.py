"""What a release must say about each upstream source (name, terms, attribution, citation, address), and
how the release licence follows from the licences of the images actually used.

Terms are quoted as their publishers state them: NIH ("no restrictions on the use of the NIH chest x-ray
images", with three attribution requirements), RSNA ("academic research and education, and other
commercial or non-commercial purposes" with attribution; Kaggle's competition rules are a separate
agreement of the competitors), the COVID-19 collection per image (its ``license`` column). A blank
licence grants nothing, so it is called "no licence stated", never counted with a licence.
"""

from __future__ import annotations

from collections import Counter

NO_LICENCE = "no licence stated"

SOURCES = {
    "covid-collection": {
        "name": "COVID-19 Image Data Collection",
        "hub_id": None,  # not on the Hugging Face Hub: source_datasets holds only real Hub ids
        "url": "https://github.com/ieee8023/covid-chestxray-dataset",
        "licence": "per image, as stated in its metadata.csv `license` column (counts below); the metadata "
                   "itself is CC BY-NC-SA 4.0",
        "attribution": "cite Cohen et al. (MELBA 2020) and each image's original publication (metadata.csv `url`)",
        "citation": "Cohen JP, Morrison P, Dao L, Roth K, Duong TQ, Ghassemi M. COVID-19 Image Data Collection: "
                    "Prospective Predictions Are the Future. MELBA 2020.",
        "bibtex": "@article{cohen2020covidProspective,\n  title={COVID-19 Image Data Collection: Prospective Predictions Are the Future},\n"
                  "  author={Cohen, Joseph Paul and Morrison, Paul and Dao, Lan and Roth, Karsten and Duong, Tim Q and Ghassemi, Marzyeh},\n"
                  "  journal={Journal of Machine Learning for Biomedical Imaging (MELBA)},\n  year={2020}\n}",
    },
    "nih": {
        "name": "NIH ChestX-ray14",
        "hub_id": None,
        "url": "https://nihcc.app.box.com/v/ChestXray-NIHCC",
        "licence": "NIH Clinical Center: \"There are no restrictions on the use of the NIH chest x-ray images\"",
        "terms": "no restrictions on use, with attribution (NIH)",
        "attribution": "link to the NIH download site (https://nihcc.app.box.com/v/ChestXray-NIHCC), cite Wang et al. "
                       "(CVPR 2017) and acknowledge the NIH Clinical Center as the data provider",
        "citation": "Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM. ChestX-ray8: Hospital-scale Chest X-ray "
                    "Database and Benchmarks. CVPR 2017.",
        "bibtex": "@inproceedings{wang2017chestxray,\n  title={ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax Diseases},\n"
                  "  author={Wang, Xiaosong and Peng, Yifan and Lu, Le and Lu, Zhiyong and Bagheri, Mohammadhadi and Summers, Ronald M},\n"
                  "  booktitle={CVPR},\n  year={2017}\n}",
    },
    "rsna": {
        "name": "RSNA Pneumonia Detection Challenge (2018)",
        "hub_id": None,
        "url": "https://www.rsna.org/education/ai-resources-and-training/ai-image-challenge/rsna-pneumonia-detection-challenge-2018",
        "licence": "RSNA: use \"for the purposes of academic research and education, and other commercial or "
                   "non-commercial purposes\" with attribution (Kaggle's competition rules are a separate agreement); "
                   "the pixels are NIH ChestX-ray14 images, whose terms apply too",
        "terms": "any use with attribution (RSNA; pixels NIH)",
        "attribution": "meet the attribution requirements on RSNA's challenge page (cite Shih et al., Radiology: AI "
                       "2019) and NIH's (link, cite Wang et al. 2017, acknowledge the NIH Clinical Center)",
        "citation": "Shih G, Wu CC, Halabi SS, et al. Augmenting the National Institutes of Health Chest Radiograph "
                    "Dataset with Expert Annotations of Possible Pneumonia. Radiology: AI 2019.",
        "bibtex": "@article{shih2019rsna,\n  title={Augmenting the National Institutes of Health Chest Radiograph Dataset with Expert Annotations of Possible Pneumonia},\n"
                  "  author={Shih, George and Wu, Carol C and Halabi, Safwan S and others},\n  journal={Radiology: Artificial Intelligence},\n  year={2019}\n}",
    },
    "hannover": {
        "name": "COVID-19 Image Repository (Hannover Medical School)",
        "hub_id": None,
        "url": "https://github.com/ml-workgroup/covid-19-image-repository",
        "licence": "CC BY 3.0 (https://creativecommons.org/licenses/by/3.0/)",
        "terms": "any use with attribution (CC BY 3.0); an external test set here, never trained on",
        "attribution": "attribute the Institute for Diagnostic and Interventional Radiology, Hannover Medical School, "
                       "and cite Winther et al. (2020), DOI 10.25835/0090041",
        "citation": "Winther HB, Laser H, Gerbel S, et al. COVID-19 Image Repository. Hannover Medical School, 2020. "
                    "doi:10.25835/0090041",
        "bibtex": "@misc{winther2020covid,\n  title={COVID-19 Image Repository},\n"
                  "  author={Winther, Hinrich B and Laser, Hans and Gerbel, Svetlana and others},\n"
                  "  publisher={Hannover Medical School},\n  doi={10.25835/0090041},\n  year={2020}\n}",
    },
    "imagefolder": {
        "name": "user image folder", "hub_id": None, "url": "",
        "licence": "as given by the user (ingest imagefolder.license)", "attribution": "as the user's source requires",
        "citation": "", "bibtex": "",
    },
}

# Terms of each licence string as the COVID-19 collection writes it (lower case, version dropped):
# attribution, non-commercial, share-alike, no derivatives. Anything else grants nothing we can rely on.
_TERMS = {
    "cc0": set(), "apache": set(), "mit": set(), "cc by": {"by"}, "cc by-sa": {"by", "sa"},
    "cc by-nc": {"by", "nc"}, "cc by-nc-sa": {"by", "nc", "sa"}, "cc by-nd": {"by", "nd"},
    "cc by-nc-nd": {"by", "nc", "nd"},
}
# The translated sources' terms as their publishers state them (see SOURCES): use with attribution.
SOURCE_TERMS = {"nih": {"by"}, "rsna": {"by"}}


def licence_name(raw: str | None) -> str:
    """The licence as the record states it, or "no licence stated" for a blank one."""
    return (raw or "").strip() or NO_LICENCE


def licence_terms(name: str) -> set[str] | None:
    """The terms of a licence string, or None when it grants no right to adapt (blank, ND or unknown)."""
    key = name.lower().replace("license", "").replace("licence", "").strip()
    for version in (" 4.0", " 3.0", " 2.0", " 1.0", " 2.5"):
        key = key.removesuffix(version)
    terms = _TERMS.get(key.strip())
    if terms is None or "nd" in terms:
        return None
    return terms


def licence_counts(licences) -> dict[str, int]:
    """{licence name: count}, most frequent first (blank licences as "no licence stated")."""
    return dict(Counter(licence_name(x) for x in licences).most_common())


def release_licence(learnt: dict[str, int], translated: list[str],
                    translated_licences: dict[str, int] | None = None) -> tuple[str, str, dict[str, int]]:
    """(Hub licence id, the reasoning for the card, images that grant no right to adapt by licence).

    ``learnt``: licence counts of the COVID-19 images the translators learnt from; ``translated``: the
    sources whose images were translated; ``translated_licences``: per-image licence counts of translated
    images from sources without publisher-wide terms (image folders). The release takes the least
    restrictive Creative Commons licence that every licensed input allows; inputs without a usable
    licence (blank, ND, unknown) are named with their counts, because no release licence can grant
    rights they never gave.
    """
    terms, restricted, restricted_translated = set(), {}, {}
    for counts, out in ((learnt, restricted), (translated_licences or {}, restricted_translated)):
        for name, n in counts.items():
            t = licence_terms(name)
            if t is None:
                out[name] = n
            else:
                terms |= t
    for src in translated:
        terms |= SOURCE_TERMS.get(src, set())
    nc, sa = "nc" in terms, "sa" in terms
    plain_sa = any(licence_terms(k) == {"by", "sa"} for k in [*learnt, *(translated_licences or {})])
    if nc and plain_sa:
        hub_id = "other"
        why = ("The translators learnt from CC BY-SA images (whose adaptations must stay CC BY-SA) and from "
               "non-commercial ones: no single licence satisfies both, so no standard licence is given.")
    else:
        hub_id = "cc-by" + ("-nc" if nc else "") + ("-sa" if sa else "") + "-4.0"
        parts = []
        if nc:
            parts.append("non-commercial")
        if sa:
            parts.append("share-alike")
        named = " and ".join(SOURCES[s]["name"] for s in translated if s in SOURCE_TERMS)
        why = (f"The most restrictive licensed inputs are {' and '.join(parts) or 'attribution-only'}, so "
               f"{hub_id.upper().replace('-4.0', ' 4.0').replace('CC-BY', 'CC BY')} is the least restrictive licence "
               "they allow." + (f" The {named} images may be used for any purpose with attribution."
                                if named else ""))
    if restricted:
        listed = ", ".join(f"{n:,} {name}" for name, n in restricted.items())
        why += (f" The translators also learnt from images that grant no right to adapt them ({listed}): a blank "
                "licence grants nothing and ND forbids derivatives. Whether a model trained on such images, or its "
                "outputs, is an adaptation is legally unsettled; this licence cannot grant rights those images never "
                "gave. To leave them out, ingest with an allow-list, e.g. "
                "`--set 'covid_collection.licenses=[CC BY-NC-SA, CC BY-NC-SA 4.0]'`, and make a new release.")
    if restricted_translated:
        listed = ", ".join(f"{n:,} {name}" for name, n in restricted_translated.items())
        why += (f" Some translated images grant no right to adapt them ({listed}); each synthetic image is an "
                "adaptation of its source, and this licence cannot grant rights the source never gave.")
    merged = dict(restricted)
    for name, n in restricted_translated.items():
        merged[name] = merged.get(name, 0) + n
    return hub_id, why, merged


PAPER_BIBTEX = (
    "@article{zunair2021synthesis,\n  title={Synthesis of COVID-19 chest X-rays using unpaired image-to-image translation},\n"
    "  author={Zunair, Hasib and Hamza, A Ben},\n  journal={Social Network Analysis and Mining},\n  volume={11},\n"
    "  number={1},\n  pages={23},\n  year={2021}\n}"
)

CREATOR = "cxrsynth maintainers"  # who made the release; the publisher is the Hub organisation once pushed


def dataset_bibtex(manifest: dict, repo_id: str | None) -> str:
    """A BibTeX entry for this release itself (the paper it follows is cited separately)."""
    key = manifest["name"].replace("-", "_") + "_" + manifest["version"].replace(".", "_")
    url = f"  howpublished={{\\url{{https://huggingface.co/datasets/{repo_id}}}}},\n" if repo_id else ""
    return (f"@misc{{{key},\n  title={{{manifest['pretty_name']} (version {manifest['version']})}},\n"
            f"  author={{{{{CREATOR}}}}},\n  year={{{manifest['created'][:4]}}},\n  version={{{manifest['version']}}},\n"
            f"{url}  note={{Synthetic images made with cxrsynth {manifest['code_version']}}}\n}}")
