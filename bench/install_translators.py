"""Install the committed, fully trained `paper` generators as a work folder's translators.

    .venv/bin/python bench/install_translators.py WORKDIR [--from bench/results/paper-translators]
        [--release bench/results/sample-release]

``bench/sample_release.sh`` needs a work folder whose two translators finished their schedule. The run
folder that trained them (``runs/paper``) is gone, but their generators are committed in fp16 under
``bench/results/paper-translators/<task>/``, each next to its run's ``config.json`` and
``train_report.json``. This script makes ``WORKDIR/translators/<task>/`` out of them:
``generator.safetensors`` (the committed fp16 file, byte for byte), ``generator.json`` (its description, with
the sha256 of that file and the fp32 original it came from), ``config.json`` and ``train_report.json``.
The pipeline then finds a finished run and does not train. Generation loads the fp16 weights into the
fp32 network and records, as every image's ``checkpoint_sha256`` and the manifest's ``generator_sha256``,
the sha256 of the committed file.

The work folder must hold the split the generators were trained on. Otherwise their COVID-19 training
images may now sit in validation or test. That split is the one the committed sample release
(``bench/results/sample-release/manifest.json``) records beside these generators' fp32 checksums: the
rigorous split, seed 0, in the ``largest-first`` order that splits had before 0.x. A work folder
with another split is refused, and the message names both checksums. Issue 19's recipe generators
(``--from bench/results/recipe-rse-translators --release bench/results/sample-release-rse``) were trained
on the rigorous split, seed 0, in the default seeded random order.

The private reverse generators were never committed, so the audit of a release made this way skips its
reverse-translation test (``audit/run.py`` runs it only when ``private/reverse_generator.safetensors`` is there).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from cxrsynth.artifacts import ReleaseFolder
from cxrsynth.core.errors import CheckpointError, CxrsynthError, DataNotFoundError, LeakageError
from cxrsynth.core.layout import TranslatorFolder, WorkLayout
from cxrsynth.core.paths import read_json, sha256_file, write_json
from cxrsynth.core.vocab import TASKS

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "bench" / "results" / "paper-translators"
SAMPLE_RELEASE = ROOT / "bench" / "results" / "sample-release"
FP16 = "generator-fp16"  # bench/collect_translators.py writes <FP16>.safetensors and <FP16>.json


def committed_generator(src: Path, task: str) -> tuple[Path, dict]:
    """The committed fp16 generator of ``task`` under ``src`` and its description, checked against its file."""
    gen, desc_path = src / task / f"{FP16}.safetensors", src / task / f"{FP16}.json"
    if not gen.is_file() or not desc_path.is_file():
        raise DataNotFoundError("no committed generator for this task", gen,
                                "run scripts/train_translators.sh paper (it collects one)")
    desc = read_json(desc_path)
    if sha256_file(gen) != desc.get("sha256"):
        raise CheckpointError("committed generator does not match the sha256 in its description", gen)
    return gen, desc


def trained_split(src: Path = COMMITTED, release: Path = SAMPLE_RELEASE) -> str:
    """The split assignment sha256 the committed generators were trained on: ``src/split.json`` when
    ``collect_translators.py`` wrote one; else the committed sample release (``release``) records it
    beside their fp32 originals' checksums (each description's ``fp32_sha256``)."""
    if (src / "split.json").is_file():
        return read_json(src / "split.json")["split_assignment_sha256"]
    manifest = ReleaseFolder(release).manifest()
    packaged = {t["task"]: t["generator_sha256"] for t in manifest.get("translators", [])}
    for task in TASKS:
        _, desc = committed_generator(src, task)
        if packaged.get(task) != desc.get("fp32_sha256"):
            raise CheckpointError("the committed sample release was not made with this committed generator",
                                 src / task / f"{FP16}.json",
                                 f"release {release} packaged {packaged.get(task)}; the fp16 file came from "
                                 f"{desc.get('fp32_sha256')}")
    return manifest["split_assignment_sha256"]


def install(workdir: Path, src: Path = COMMITTED, split_sha256: str | None = None) -> dict[str, str]:
    """Copy each task's committed generator, its description, config and training report into
    ``workdir``'s translator run folder (temporary name, then rename); returns {task: generator sha256}.

    ``split_sha256``: the split the generators were trained on (:func:`trained_split`). The work folder's
    ``splits.json`` must have it. None skips the check, for tests on small folders only."""
    layout = WorkLayout(workdir)
    if split_sha256 is not None:
        if not layout.splits.is_file():
            raise DataNotFoundError("no splits in the work folder", layout.splits, "run `cxrsynth ingest` and `cxrsynth split` first")
        have = read_json(layout.splits).get("assignment_sha256")
        if have != split_sha256:
            raise LeakageError("the work folder's split is not the one the committed generators were trained on",
                                 layout.splits, f"its assignment sha256 is {have}, the generators' {split_sha256}; "
                                 "split rigorous, seed 0, in the generators' group order (--set order=largest-first "
                                 "for the paper generators, the default random order for recipe-rse)")
    installed = {}
    for task in TASKS:
        gen, desc = committed_generator(src, task)
        run = layout.translator(task)
        run.root.mkdir(parents=True, exist_ok=True)
        tmp = run.generator.with_name(f".{run.generator.name}.tmp")
        shutil.copyfile(gen, tmp)
        tmp.replace(run.generator)
        committed = TranslatorFolder(src / task)
        for name in ("config", "report"):
            write_json(getattr(run, name), read_json(getattr(committed, name)))
        write_json(run.generator_info, desc | {"file": run.generator.name,
                                                "installed_from": str(gen.relative_to(ROOT)) if gen.is_relative_to(ROOT) else str(gen)})
        installed[task] = desc["sha256"]
    return installed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--from", dest="src", type=Path, default=COMMITTED, help="folder of <task>/generator-fp16.*")
    ap.add_argument("--release", type=Path, default=SAMPLE_RELEASE,
                    help="the committed release made with these generators (its manifest names their split)")
    args = ap.parse_args(argv)
    try:
        for task, sha in install(args.workdir, args.src, trained_split(args.src, args.release)).items():
            print(f"{task}: {WorkLayout(args.workdir).translator(task).generator} (sha256 {sha})")
    except CxrsynthError as exc:
        print(f"Error: {exc.one_line()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
