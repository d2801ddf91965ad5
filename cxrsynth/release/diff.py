"""``cxrsynth diff OLD NEW``: what changed between two release folders, for the new card's "Changes".

Compared from each folder's ``manifest.json`` and ``SHA256SUMS`` alone (so an ``hf download`` copy of a
published version works as OLD): image counts per config, translators (by generator checksum), the
licence and the licences learnt from, the sources used, and files added, removed or changed.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import ReleaseFolder
from ..errors import DataNotFoundError


def _sums(folder: Path) -> dict[str, str]:
    path = ReleaseFolder(folder).checksums
    if not path.is_file():
        raise DataNotFoundError("release has no SHA256SUMS", path, "give a release folder made by `cxrsynth release`")
    return {rel: sha for sha, rel in (line.split("  ", 1) for line in path.read_text().splitlines() if "  " in line)}


def _manifest(folder: Path) -> dict:
    return ReleaseFolder(folder).manifest()


def diff_releases(old: str | Path, new: str | Path) -> dict:
    """The differences as plain data (JSON-ready)."""
    old, new = Path(old), Path(new)
    mo, mn = _manifest(old), _manifest(new)
    so, sn = _sums(old), _sums(new)
    configs = sorted(set(mo["counts"]) | set(mn["counts"]), key=lambda c: (c == "all", c))
    trans_o = {t["config"]: t["translator_id"] for t in mo["translators"]}
    trans_n = {t["config"]: t["translator_id"] for t in mn["translators"]}
    lic_o = (mo.get("licensing") or {}).get("learnt_from", {})
    lic_n = (mn.get("licensing") or {}).get("learnt_from", {})
    return {
        "old": mo["version"], "new": mn["version"],
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
    """Put the changes into ``new``'s card (and SHA256SUMS), keeping the rest of the card."""
    from .card import rerender

    rerender(Path(new), changes=changes_markdown(d))
