"""``cxrsynth diff OLD NEW``: what changed between two release folders, for the new card's "Changes".

Compared from each folder's ``manifest.json`` and ``SHA256SUMS`` alone (so an ``hf download`` copy of a
published version works as OLD): image counts per config, translators (by generator checksum), the
licence and the licences learnt from, the sources used, and files added, removed or changed.

OLD is often a copy from elsewhere: both folders are read as untrusted input (JSON, the manifest's
schema, plain strings only), OLD must be the older version, and ``--write`` renders NEW's card in a
staging copy that must verify before it replaces NEW.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ...artifacts import ReleaseFolder
from ...core.errors import BadInputError, ConfigError, DataNotFoundError, VerifyFailed
from ...core.schemas import validate

# The strings a manifest or SHA256SUMS puts into NEW's card (config names, translator ids, licences,
# source names, file paths). A release writes only these characters there; anything else (HTML, a space,
# an absolute path) is a folder not made by `cxrsynth release`, refused before it reaches the card.
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_LICENCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+()-]{0,99}")  # as upstream metadata states it: "CC BY-NC-SA 4.0"
_RELPATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}(/[A-Za-z0-9][A-Za-z0-9._+-]{0,199}){0,15}")


def _sums(folder: Path, which: str) -> dict[str, str]:
    """``{relative path: sha256}`` of ``folder``'s SHA256SUMS; a line that is not ``<64 hex>  <plain
    relative path>`` is refused in one line naming the file and the line."""
    path = ReleaseFolder(folder).checksums
    if not path.is_file():
        raise DataNotFoundError("release has no SHA256SUMS", path, "give a release folder made by `cxrsynth release`")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{which}'s SHA256SUMS is not text", path, str(exc)) from exc
    out = {}
    for n, line in enumerate(lines, 1):
        sha, sep, rel = line.partition("  ")
        if not line.strip():
            continue
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", sha) or not _RELPATH.fullmatch(rel) or ".." in rel.split("/"):
            raise BadInputError(f"{which}'s SHA256SUMS has a line that is not '<sha256>  <relative path>'", path,
                                f"line {n}; give a release folder made by `cxrsynth release`")
        out[rel] = sha
    return out


def _plain(value, field: str, which: str, path: Path, pattern: re.Pattern = _PLAIN, allowed: str = "._+-") -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadInputError(f"{which}'s manifest.json has a {field} that a release never writes", path,
                            f"{str(value)[:60]!r}; only letters, digits and {allowed} are taken into a card")
    return value


def _manifest(folder: Path, which: str) -> dict:
    """``folder``'s manifest, read as untrusted input: JSON, valid against the release manifest's schema,
    and every string that reaches the card plain (:data:`_PLAIN`). ``which`` is OLD or NEW, for the error."""
    rf = ReleaseFolder(folder)
    if not rf.manifest_path.is_file():
        rf.manifest()  # raises the "not a release folder" error
    path = rf.manifest_path
    try:
        m = json.loads(path.read_bytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{which}'s manifest.json is not JSON", path,
                            f"{getattr(exc, 'msg', exc)}; give a release folder made by `cxrsynth release`") from exc
    except RecursionError:
        raise BadInputError(f"{which}'s manifest.json is not readable JSON", path, "nested too deeply") from None
    validate(m, "release_manifest", f"{which} {path}")
    for c in m["counts"]:
        _plain(c, "config name", which, path)
    for t in m["translators"]:
        _plain(t["config"], "config name", which, path)
        _plain(t["translator_id"], "translator id", which, path)
    _plain(m["license"], "licence", which, path)
    for src in m["sources"]:
        _plain(src["source"], "source name", which, path)
    learnt = m.get("licensing", {}).get("learnt_from", {}) if isinstance(m.get("licensing"), dict) else {}
    for k, v in (learnt.items() if isinstance(learnt, dict) else [(None, None)]):
        _plain(k, "licence learnt from", which, path, _LICENCE_NAME, "spaces and ._+()-")
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise BadInputError(f"{which}'s manifest.json has a count of images learnt from that is not a count",
                                path, f"{k}: {str(v)[:40]!r}")
    return m


def _version(m: dict) -> tuple[int, ...]:
    return tuple(int(x) for x in m["version"].split("."))  # the schema's pattern: MAJOR.MINOR.PATCH


def diff_releases(old: str | Path, new: str | Path) -> dict:
    """The differences as plain data (JSON-ready). Both folders are read as untrusted (:func:`_manifest`,
    :func:`_sums`); OLD newer than NEW is refused (the arguments are swapped), and the same version on
    both sides is said in ``warnings``."""
    old, new = Path(old), Path(new)
    mo, mn = _manifest(old, "OLD"), _manifest(new, "NEW")
    if _version(mo) > _version(mn):
        raise ConfigError(f"OLD is newer than NEW (OLD {mo['version']}, NEW {mn['version']})", f"{old} {new}",
                          "the arguments are OLD NEW: swap them")
    warnings = ([f"OLD and NEW are both version {mn['version']}: give NEW a higher version before its card "
                 "says what changed"] if _version(mo) == _version(mn) else [])
    so, sn = _sums(old, "OLD"), _sums(new, "NEW")
    configs = sorted(set(mo["counts"]) | set(mn["counts"]), key=lambda c: (c == "all", c))
    trans_o = {t["config"]: t["translator_id"] for t in mo["translators"]}
    trans_n = {t["config"]: t["translator_id"] for t in mn["translators"]}
    lic_o = (mo.get("licensing") or {}).get("learnt_from", {})
    lic_n = (mn.get("licensing") or {}).get("learnt_from", {})
    return {
        "old": mo["version"], "new": mn["version"], "warnings": warnings,
        "counts": {c: {"old": mo["counts"].get(c, 0), "new": mn["counts"].get(c, 0)} for c in configs},
        "translators": {c: {"old": trans_o.get(c), "new": trans_n.get(c)} for c in sorted(set(trans_o) | set(trans_n))
                        if trans_o.get(c) != trans_n.get(c)},
        "license": {"old": mo["license"], "new": mn["license"]},
        "licences_learnt_from": {k: {"old": lic_o.get(k, 0), "new": lic_n.get(k, 0)} for k in sorted(set(lic_o) | set(lic_n))
                                 if lic_o.get(k, 0) != lic_n.get(k, 0)},
        "sources": {"old": sorted(s["source"] for s in mo["sources"]), "new": sorted(s["source"] for s in mn["sources"])},
        "files": {"added": sorted(set(sn) - set(so)), "removed": sorted(set(so) - set(sn)),
                  "changed": sorted(f for f in set(so) & set(sn) if so[f] != sn[f])},
    }


def changes_markdown(d: dict) -> str:
    """The "Changes" section of the new card."""
    lines = [f"Changes from version {d['old']} to {d['new']}:", ""]
    counts = ", ".join(f"{c} {v['old']:,} -> {v['new']:,}" for c, v in d["counts"].items() if v["old"] != v["new"])
    lines.append(f"- **Images**: {counts or 'same counts'}.")
    trans = "; ".join(f"`{c}` `{v['old']}` -> `{v['new']}`" for c, v in d["translators"].items())
    lines.append(f"- **Translators**: {trans or 'the same generators'}.")
    lic = d["license"]
    learnt = ", ".join(f"{k} {v['old']:,} -> {v['new']:,}" for k, v in d["licences_learnt_from"].items())
    lines.append(f"- **Licence**: {lic['old'] + ' -> ' + lic['new'] if lic['old'] != lic['new'] else lic['new'] + ' (unchanged)'}"
                 f"; COVID-19 images learnt from, by licence: {learnt or 'unchanged'}.")
    if d["sources"]["old"] != d["sources"]["new"]:
        lines.append(f"- **Sources**: {', '.join(d['sources']['old'])} -> {', '.join(d['sources']['new'])}.")
    f = d["files"]
    lines.append(f"- **Files**: {len(f['added'])} added, {len(f['removed'])} removed, {len(f['changed'])} changed"
                 + (f" (removed: {', '.join(f['removed'])})" if f["removed"] else "") + ".")
    return "\n".join(lines)


def write_changes(new: str | Path, d: dict) -> None:
    """Put the changes into ``new``'s card (its Changes section, croissant.json and SHA256SUMS), never
    breaking it in place: the folder is copied (hard links: no image is copied) into a staging folder
    beside it, rendered there and verified; only when that copy has no problem the original lacked is it
    swapped in (two renames). Any failure leaves ``new`` as it was and raises :class:`VerifyFailed`
    naming the first new problem. Refused when OLD and NEW have the same version."""
    from ...core.locks import hold
    from .card import rerender
    from .verify import find_private, verify

    new = Path(new)
    if d["old"] == d["new"]:
        raise ConfigError("--write needs NEW to be a later version than OLD", f"both {d['new']}",
                          "give NEW a higher --version when you make it")
    stage = new.parent / f".{new.name}.diff-{os.getpid()}"
    with hold(new.parent, "release", f"the release folder {new.parent}"):
        private = find_private(new)
        before = set(verify(new, private))
        try:
            shutil.rmtree(stage, ignore_errors=True)
            staged = stage / new.name  # the same name, so that verify's messages compare
            shutil.copytree(new, staged, symlinks=True, copy_function=_link_or_copy)
            rerender(staged, changes=changes_markdown(d))  # atomic writes: new names, the links are not written
            added = [p for p in verify(staged, private) if p not in before]
            if added:
                raise VerifyFailed(f"the card with these changes does not verify ({len(added)} new problems, first: "
                                   f"{added[0]})", new, "nothing was changed in NEW")
            aside = stage / "before"
            os.rename(new, aside)
            try:
                os.rename(staged, new)
            except OSError:
                os.rename(aside, new)
                raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
