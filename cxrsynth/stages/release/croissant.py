"""Croissant 1.0 metadata (``croissant.json``) with its responsible-AI (RAI 1.0) fields.

The Hub writes its own Croissant file from the parquet shards but drops the RAI fields, so the
release ships this one. It validates with ``mlcroissant validate --jsonld croissant.json`` offline,
without warnings about required fields. RAI keys are written under the names mlcroissant reads
(``rai:dataDataManipulationProtocol``; the RAI 1.0 text spells it ``rai:dataManipulationProtocol``, so
both are written), and the label columns reference an enumeration that names the classes.
"""

from __future__ import annotations

from ...data.records import LABELS
from ...data.sources.terms import CREATOR, SOURCES, dataset_bibtex
from .access import access_sentence
from .features import image_format, image_size

CONFORMS_TO = ["http://mlcommons.org/croissant/1.0", "http://mlcommons.org/croissant/RAI/1.0"]
# What the Croissant 1.0 specification requires of every dataset. ``url`` is the dataset's address, known
# once it is pushed: ``cxrsynth push`` renders the file again with it; a local build leaves it out
# rather than invent one.
REQUIRED = ("@context", "@type", "conformsTo", "description", "license", "name", "url", "creator", "datePublished")

CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract", "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
    "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated",
    "replace": "cr:replace", "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField",
    "transform": "cr:transform", "samplingRate": "cr:samplingRate", "equivalentProperty": "cr:equivalentProperty",
}

FIELDS = [
    ("id", "sc:Text", "Opaque id of the synthetic image."),
    ("label", "sc:Integer", "Class index into label_classes: 0 normal, 1 pneumonia, 2 covid (always 2 here)."),
    ("config", "sc:Text", "g_nc (translated from normal) or g_pc (from pneumonia)."),
    ("source_label", "sc:Integer", "Class index (into label_classes) of the image it was translated from."),
    ("translator_id", "sc:Text", "Id of the translator (task and generator checksum prefix)."),
    ("checkpoint_sha256", "sc:Text", "sha256 of the generator file."),
    ("png_sha256", "sc:Text", "sha256 of the PNG bytes."),
    ("seed", "sc:Integer", "Seed recorded with the generation."),
    ("code_version", "sc:Text", "cxrsynth version that made the image."),
    ("created", "sc:DateTime", "When the image was made (UTC, ISO 8601)."),
]


def _label_classes() -> dict:
    """An enumeration record set: the class index and name of ``label`` and ``source_label``."""
    return {"@type": "cr:RecordSet", "@id": "label_classes", "name": "label_classes", "dataType": "sc:Enumeration",
            "description": "The classes of label and source_label.", "key": {"@id": "label_classes/index"},
            "field": [{"@type": "cr:Field", "@id": "label_classes/index", "name": "label_classes/index",
                       "description": "Class index.", "dataType": "sc:Integer"},
                      {"@type": "cr:Field", "@id": "label_classes/name", "name": "label_classes/name",
                       "description": "Class name.", "dataType": "sc:Text"}],
            "data": [{"label_classes/index": i, "label_classes/name": name} for i, name in enumerate(LABELS)]}


def make_croissant(manifest: dict, repo_id: str | None = None, access: str | None = None) -> dict:
    """The Croissant document of a release; ``repo_id`` (ORG/NAME) and ``access`` (the repo's setting as
    read back from the Hub, see ``access.py``) once they are known, at push time."""
    sources = [SOURCES[s["source"]] for s in manifest["sources"]]
    distribution = [{
        "@type": "cr:FileObject", "@id": f["path"], "name": f["path"], "contentUrl": f["path"],
        "encodingFormat": "application/x-parquet", "sha256": f["sha256"], "contentSize": f"{f['num_bytes']} B",
    } for f in manifest["files"]]
    distribution.append({"@type": "cr:FileSet", "@id": "parquet-files", "name": "parquet-files",
                         "encodingFormat": "application/x-parquet", "includes": "data/*.parquet"})
    fields = [{"@type": "cr:Field", "@id": f"images/{name}", "name": f"images/{name}", "description": desc,
               "dataType": dtype, "source": {"fileSet": {"@id": "parquet-files"}, "extract": {"column": name}},
               **({"references": {"field": {"@id": "label_classes/index"}}} if name in ("label", "source_label") else {})}
              for name, dtype, desc in FIELDS]
    fields.insert(1, {"@type": "cr:Field", "@id": "images/image", "name": "images/image",
                      "description": image_format(manifest) + ".", "dataType": "sc:ImageObject",
                      "source": {"fileSet": {"@id": "parquet-files"}, "extract": {"column": "image"},
                                 "transform": {"jsonPath": "bytes"}}})
    counts = ", ".join(f"{k}: {v}" for k, v in manifest["counts"].items())
    size = image_size(manifest)
    licensing = manifest.get("licensing") or {}
    learnt = ", ".join(f"{n} {name}" for name, n in licensing.get("learnt_from", {}).items())
    creator = {"@type": "sc:Organization", "name": CREATOR}
    publisher = {"@type": "sc:Organization", "name": repo_id.split("/")[0]} if repo_id else creator
    manipulation = ("Translators trained on balanced sets of real images; every planned source image translated "
                    "once; outputs quantised to 8 bits.")
    license_url = (f"https://spdx.org/licenses/{manifest['license'].upper()}.html" if manifest["license"] != "other"
                   else "https://huggingface.co/datasets/" + (repo_id or manifest["name"]) + "#licence")
    doc = {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": CONFORMS_TO,
        "name": manifest["name"], "alternateName": manifest.get("pretty_name", manifest["name"]),
        "description": (f"Synthetic COVID-19 chest X-rays made by CycleGAN translation of real Normal and Pneumonia "
                        f"X-rays ({counts}). Not for clinical use."),
        "version": manifest["version"], "license": license_url,
        "creator": [creator], "publisher": [publisher], "datePublished": manifest["created"][:10],
        "citeAs": dataset_bibtex(manifest, repo_id),
        "keywords": ["chest x-ray", "covid-19", "synthetic data", "cyclegan", "medical imaging"],
        "isBasedOn": [s["url"] for s in sources if s["url"]],
        "distribution": distribution,
        "recordSet": [_label_classes(),
                      {"@type": "cr:RecordSet", "@id": "images", "name": "images",
                       "description": "One synthetic image per record.", "field": fields}],
        "rai:dataCollection": ("Each image is the output of a CycleGAN generator applied to one real train-split chest "
                               "X-ray: " + "; ".join(f"{s['name']} ({s['url']})" for s in sources) + "."),
        "rai:dataCollectionType": ["Secondary Data Analysis", "Synthetic Data"],
        "rai:dataPreprocessingProtocol": ["Real images decoded to 8-bit grayscale and stretched to "
                                          + (f"{size}x{size}" if size else "the translators' size") + " (DICOM: "
                                          "modality and VOI LUTs, MONOCHROME1 inverted); duplicates across sources "
                                          "removed by content; patient-level splits."],
        "rai:dataDataManipulationProtocol": manipulation,
        "rai:dataManipulationProtocol": manipulation,
        "rai:dataUseCases": ["Research on data augmentation for chest X-ray classifiers",
                             "Research on the privacy of synthetic medical images"],
        "rai:dataBiases": ["All COVID-19 images the translators learnt from are figures from publications, with text "
                           "and arrows; source, view and age differ between classes and act as shortcuts."],
        "rai:dataLimitations": ["Not for clinical use. Synthetic images carry their source's anatomy and its confounders."],
        "rai:dataSocialImpact": ("Misused as clinical evidence it could harm patients; used for research it can reduce "
                                 "the need to share real patient images."),
        "rai:personalSensitiveInformation": ["No identifiers are published; each image derives from one real patient's "
                                             "X-ray and may be linkable to it (see the audit in the dataset card); "
                                             + access_sentence(access) + "."],
        "rai:dataReleaseMaintenancePlan": ("Versioned releases; each version is immutable (a tag on the Hub) and "
                                           "verifiable with SHA256SUMS and `cxrsynth verify`. Licence: "
                                           + manifest["license"] + (f" (COVID-19 images learnt from, by licence: {learnt})"
                                                                    if learnt else "") + "."
                                           + (f" Questions and takedown requests: {manifest['contact']}."
                                              if manifest.get("contact") else "")),
    }
    if repo_id:
        doc["url"] = f"https://huggingface.co/datasets/{repo_id}"
    return doc
