"""Is this release made from this work folder's split?

A release made from another split (a Hub release, one built in another work folder, or this folder
before it was split again) can hold translations of this folder's *test* images: training on them
leaks the test set into the synthetic arms, and nothing in the images shows it. The release manifest
records the checksums of the split assignment and of the plan it was made from
(``split_assignment_sha256``, ``plan_sha256``); the benchmark compares them with the work folder's
and refuses a mismatch unless ``allow_foreign`` (``--allow-foreign-release``), which every output then
states. When the private mapping is at hand (``<release>.private/mapping.jsonl`` beside a release
folder), every synthetic image's source must also be a train image of this split.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ...core.errors import ConfigError, DataNotFoundError
from ...artifacts import ReleaseFolder
from ...artifacts.release_ref import parse, read_manifest
from ...core.paths import read_jsonl
from ..plan import plan_sha256
from .inputs import SplitData

FOREIGN_NOTICE = "FOREIGN RELEASE: --allow-foreign-release let through a release that does not match this split"


def release_manifest(release: str) -> dict:
    """``manifest.json`` of a release folder, or of a Hub dataset (``ORG/NAME[@REV]``, through the Hub cache)."""
    return read_manifest(parse(release))


def _private_mapping(release: str, private: str | Path | None) -> Path | None:
    """The mapping given with ``--private``, else the one beside a local release if it is there."""
    if private:
        return ReleaseFolder(release, private).mapping_path
    if not Path(release).is_dir():
        return None
    guess = ReleaseFolder(release).mapping_path
    return guess if guess.is_file() else None


def check_release(data: SplitData, release: str, allow_foreign: bool = False,
                  private: str | Path | None = None) -> dict:
    """Compare the release with the split and plan of ``data`` (:class:`~.inputs.SplitData`); raise
    :class:`ConfigError` on a mismatch unless ``allow_foreign``. Returns what was checked, for results.json."""
    splits = data.splits
    manifest = release_manifest(release)
    problems = []
    want, got = splits["assignment_sha256"], manifest.get("split_assignment_sha256")
    if got is None:
        problems.append("the release manifest records no split checksum (made before cxrsynth recorded it)")
    elif got != want:
        problems.append(f"it was made from another split (assignment sha256 {got[:12]}..., "
                        f"this work folder's {want[:12]}...)")
    plan_want = plan_sha256(data.plan) if data.plan is not None else None
    plan_got = manifest.get("plan_sha256")
    if plan_want and plan_got and plan_got != plan_want and got == want:
        problems.append(f"it was made from another plan (plan sha256 {plan_got[:12]}..., this work folder's "
                        f"{plan_want[:12]}...)")
    mapping = _private_mapping(release, private)
    sources = None
    if mapping is not None:
        if not mapping.is_file():
            raise DataNotFoundError("private mapping not found", mapping)
        assign = splits["assignments"]
        ids = [m["record_id"] for m in read_jsonl(mapping)]
        where = Counter(assign.get(i, "not in this split") for i in ids)
        sources = {"checked": len(ids), "by_split": dict(where)}
        bad = {k: v for k, v in where.items() if k != "train"}
        if bad:
            problems.append("synthetic images are translations of non-train images ("
                            + ", ".join(f"{k}: {v}" for k, v in sorted(bad.items())) + ")")
    result = {"release": release, "split_assignment_sha256": got, "expected_split_assignment_sha256": want,
              "plan_sha256": plan_got, "expected_plan_sha256": plan_want, "private_mapping": sources,
              "problems": problems, "foreign": bool(problems), "allowed_by_flag": bool(problems) and allow_foreign}
    if problems and not allow_foreign:
        raise ConfigError("the release does not match this work folder's split: " + "; ".join(problems), release,
                          "its synthetic images may be translations of this folder's test images; use the release "
                          "made from this work folder, or pass --allow-foreign-release (stated in every output)")
    return result
