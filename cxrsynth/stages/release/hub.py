"""``cxrsynth push``: publish a verified release on the Hugging Face Hub (or any server that speaks its
HTTP protocol, through ``HF_ENDPOINT``) as one version of the dataset repo.

Through ``huggingface_hub``'s own primitives, in this order, so that a refusal leaves nothing behind:

1. the release is copied (hard links) into a staging folder beside it, and its card and Croissant file
   are rendered there with the real repo id; the copy is verified;
2. the card's YAML is validated by the Hub (``DatasetCard.validate``) before any repo is created;
3. the version order is kept (``list_repo_refs``): an existing tag for this version must mark exactly
   these files, else the push is refused (a published version never changes); a version lower than the
   highest ``v*`` tag is refused unless ``allow_older``; when this version's tag exists but ``main``
   holds another version, the push says so and stops, unless ``restore_main`` asks to commit this
   version's files to ``main`` again (``load_dataset`` without a revision reads ``main``);
4. the repo is created (``exist_ok``) and its gating and visibility set as asked, before any data goes up: a
   new repo is gated (manual approval) unless told otherwise, and a public repo without gating needs
   ``--public --gated off`` both; the setting is read back and the card's Access paragraph and Croissant
   are rendered from it (``access.py``), with the contact for questions and takedown requests that the
   manifest records (``--contact``; a new version is not published without one);
5. ``upload_folder`` uploads the files and deletes from ``main`` every remote file this version no
   longer has (``delete_patterns``); the library skips unchanged files (blobs already on the Hub, e.g. a
   restored version's, are not sent again) and, with hf_xet, splits large uploads into resumable
   commits; without it the version is one commit;
6. the tag is created on the commit just made (``create_tag(revision=...)``) and read back.

An interrupted push is completed by running it again: uploaded blobs are not sent twice, and the tag is
made when its commit is there. The token comes from ``HF_TOKEN`` or the token file and is never printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ...artifacts import ReleaseFolder
from ...artifacts.release_folder import MANIFEST, NOT_IN_SUMS
from ...core.errors import ConfigError, PushError
from ...core.paths import sha256_file
from .access import access_of, check_contact
from .card import rerender
from .describe import write_manifest
from .refname import check_tag
from .verify import VerifyError, find_private, publishable_files, verify


@dataclass
class PushReport:
    repo_id: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    tag: str | None = None
    tag_commit: str | None = None
    private: bool | None = None
    gated: str | bool | None = None
    access: str | None = None  # what the card and Croissant say (access.py), from the setting read back
    contact: str | None = None
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False


def _git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def publishable(root: Path, check: bool = True) -> list[str]:
    """The files of the release to publish, relative to it.

    With ``check`` (the default): exactly :func:`verify.publishable_files`, i.e. the release's metadata and
    the manifest's shards after every verify check passed, so no stray, linked or private file rides
    along (and an ``hf download`` copy's ``.gitattributes`` / ``.cache/`` stay home). Without: SHA256SUMS
    and what it lists, and the card (tests of the upload path only).
    """
    if check:
        try:
            return [p.relative_to(root).as_posix() for p in publishable_files(root, find_private(root))]
        except VerifyError as exc:
            raise PushError(exc.what, root, exc.hint) from None
    sums = root / "SHA256SUMS"
    listed = [line.split("  ", 1)[1] for line in sums.read_text().splitlines() if "  " in line] if sums.is_file() else []
    return sorted(set(listed) | {"SHA256SUMS"} | set(NOT_IN_SUMS))


@contextmanager
def _staged(root: Path, repo_id: str, files: list[str], contact: str | None = None):
    """A copy of ``files`` of the release (hard links where possible) whose card and Croissant name
    ``repo_id``, and whose manifest records ``contact`` when one is given."""
    parent = root.parent if os.access(root.parent, os.W_OK) else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.push-", dir=parent))
    stage = tmp / root.name
    try:
        for rel in files:
            src, dst = root / rel, stage / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel in (*RENDERED, MANIFEST):
                shutil.copy2(src, dst)  # rewritten below: never through a hard link into the release
                continue
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        if contact:
            write_manifest(stage, dict(ReleaseFolder(stage).manifest(), contact=contact))
        rerender(stage, repo_id)
        yield stage
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remote_tree(api, repo_id: str, revision: str) -> dict[str, str]:
    """{path: sha256 (LFS) or git blob id} of the files at ``revision``; {} for an empty repo."""
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    try:
        items = api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True)
        return {it.path: (it.lfs.sha256 if getattr(it, "lfs", None) else it.blob_id)
                for it in items if getattr(it, "blob_id", None) is not None}
    except (EntryNotFoundError, RevisionNotFoundError):
        return {}


def _same(remote: str | None, path: Path) -> bool:
    return remote is not None and remote in (sha256_file(path), _git_blob_sha1(path))


def _diff(stage: Path, files: list[str], remote: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(changed or new, unchanged, remote files this version no longer has); ``.gitattributes`` is the Hub's."""
    changed = [f for f in files if not _same(remote.get(f), stage / f)]
    unchanged = [f for f in files if f not in changed]
    gone = sorted(set(remote) - set(files) - {".gitattributes"})
    return changed, unchanged, gone


def _validate_card(card: Path) -> None:
    """Ask the Hub whether it accepts the card's YAML; a refusal is one line with the Hub's reasons."""
    from huggingface_hub import DatasetCard
    from huggingface_hub.errors import HfHubHTTPError

    try:
        DatasetCard(card.read_text()).validate(repo_type="dataset")
    except ValueError as exc:
        try:
            reasons = "; ".join(e.get("message", "") for e in json.loads(str(exc)).get("errors", []))
        except (ValueError, AttributeError):
            reasons = " ".join(str(exc).split())
        raise PushError("the Hub rejects the dataset card's YAML", card.name, reasons[:400]) from None
    except HfHubHTTPError as exc:
        raise PushError("the Hub could not validate the dataset card", card.name, str(exc).splitlines()[0][:300]) from None


def _plan_gating(api, repo_id: str, refs: dict | None, private: bool | None, gated) -> str | None:
    """The gating to set: as asked; for a new repo, manual approval when nothing was asked. A repo left
    public and not gated is refused unless both ``--public`` and ``--gated off`` asked for it, since the
    data derive from patients' X-rays and the card asks requesters to accept its terms."""
    info = None if refs is None else api.repo_info(repo_id, repo_type="dataset")
    want = gated if gated is not None else ("manual" if info is None else None)
    public = not (private if private is not None else bool(info and info.private))
    ungated = (want if want is not None else (info.gated if info else False)) in (False, None, "off")
    if public and ungated and not (private is False and gated == "off"):
        raise PushError("this push would leave the repo public and not gated", repo_id,
                        "pass --gated manual (or auto) to gate it, or --public --gated off to publish it ungated on purpose")
    return want


def _settings(api, repo_id: str, private: bool | None, gated, report: PushReport) -> None:
    """Make visibility and gating what was asked (before any data goes up), say what changed, and keep
    the setting as the Hub reports it back (``report.access``: what the card and Croissant will say)."""
    info = api.repo_info(repo_id, repo_type="dataset")
    report.private = bool(info.private)
    if private is not None and bool(info.private) != private:
        api.update_repo_settings(repo_id, repo_type="dataset", private=private)
        info = api.repo_info(repo_id, repo_type="dataset")
        if bool(info.private) != private:
            raise PushError(f"the repo stayed {'private' if info.private else 'public'}", repo_id,
                            "change its visibility on the Hub, then push again")
        report.notes.append(f"visibility changed to {'private' if private else 'public'}")
        report.private = private
    if gated is not None:
        want = False if gated in (False, "off") else gated
        if (info.gated or False) != want:
            api.update_repo_settings(repo_id, repo_type="dataset", gated=want)
            info = api.repo_info(repo_id, repo_type="dataset")
            if (info.gated or False) != want:
                raise PushError(f"the repo's gating stayed {info.gated}", repo_id, "set it on the Hub, then push again")
            report.notes.append(f"gating set to {want or 'off'}")
    report.gated = info.gated
    report.access = access_of(report.private, info.gated)
    if report.access == "public":
        report.notes.append("the repo is public and not gated (--public --gated off); the card and Croissant say so")


def _contact(api, repo_id: str, stage: Path, refs: dict | None, tagged: bool, report: PushReport) -> None:
    """The contact of the staged manifest: as given, else the one ``main``'s manifest records (the repo's).
    A new version is not published without one."""
    folder = ReleaseFolder(stage)
    manifest = folder.manifest()
    if not manifest.get("contact") and refs is not None and refs["main"]:
        kept = (_remote_manifest(api, repo_id, refs["main"]) or {}).get("contact")
        if kept:
            write_manifest(folder, dict(manifest, contact=kept))
            report.notes.append(f"contact {kept} kept from main's manifest")
    report.contact = folder.manifest().get("contact")
    if not report.contact and not tagged:
        raise PushError("no contact for questions and takedown requests", repo_id,
                        "pass --contact EMAIL-OR-URL: it is stored in the manifest and shown in the card")


def _stage_files(stage: Path) -> list[str]:
    return sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())


def _commit(api, repo_id: str, stage: Path, main: dict[str, str], message: str, description: str,
            report: PushReport):
    """Make ``main`` hold exactly the staged files (one ``upload_folder``; unchanged files are skipped)."""
    changed, unchanged, gone = _diff(stage, _stage_files(stage), main)
    report.uploaded, report.unchanged, report.deleted = changed, unchanged, gone
    info = api.upload_folder(repo_id=repo_id, folder_path=stage, repo_type="dataset", revision="main",
                             commit_message=message, commit_description=description, delete_patterns="*")
    if changed or gone:
        report.commits.append(info.oid)
    return info


def push(release: str | Path, repo_id: str, tag: str | None = None, private: bool | None = None,
         dry_run: bool = False, token: str | None = None, check: bool = True,
         gated: Literal["auto", "manual", "off"] | None = None, allow_older: bool = False,
         restore_main: bool = False, contact: str | None = None) -> PushReport:
    """Publish ``release`` as version ``tag`` (default ``v<manifest version>``) of ``repo_id``.

    ``private``: None leaves an existing repo's visibility as it is (a new repo is public); True or
    False sets it. ``gated``: "auto", "manual" or "off" sets access requests; None leaves an existing
    repo's and gates a new one (manual). A public repo without gating needs ``private=False`` and
    ``gated="off"`` both. The card and Croissant state the access the Hub reports back.
    ``allow_older``: publish a version lower than the highest ``v*`` tag (``main`` then serves it).
    ``restore_main``: when this version is already tagged but ``main`` holds another one, commit this
    version's files to ``main``. ``contact``: an email or web address for questions and takedown
    requests, stored in the published manifest (default: the release's, else the one on ``main``).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    root = Path(release)
    if "/" not in repo_id:
        raise ConfigError("repo id must be ORG/NAME", repo_id)
    if gated not in (None, "auto", "manual", "off"):
        raise ConfigError("gated must be auto, manual or off", gated)
    if tag is not None:
        check_tag(tag)  # before any work; the default, v<version>, comes from the verified manifest
    contact = check_contact(contact) if contact is not None else None
    files = publishable(root, check)
    manifest = ReleaseFolder(root).manifest()
    tag = tag or f"v{manifest['version']}"
    report = PushReport(repo_id=repo_id, tag=tag, dry_run=dry_run, private=private, gated=gated)
    with _staged(root, repo_id, files, contact) as stage:
        if check:
            _check(stage, root)  # the card and Croissant rendered for the repo verify too
        if dry_run:
            report.uploaded, report.contact = files, ReleaseFolder(stage).manifest().get("contact")
            if not report.contact:
                report.notes.append("no contact recorded: publishing a new version needs --contact EMAIL-OR-URL")
            return report
        _validate_card(stage / "README.md")
        api = HfApi(token=token)
        try:
            refs = _refs(api, repo_id)
            # every check comes before anything on the Hub changes: the version order, the contact, gating
            tagged = refs is not None and tag in refs["tags"] and _already_tagged(api, repo_id, tag, refs, stage, files, report)
            main = _remote_tree(api, repo_id, "main") if refs is not None else {}
            restoring = tagged and _main_holds_other(api, repo_id, tag, refs, stage, files, main, restore_main, report)
            if not tagged or restoring:  # main will move to this version
                _check_order(refs, manifest["version"], tag, allow_older, restoring, report)
            _contact(api, repo_id, stage, refs, tagged, report)
            gated = _plan_gating(api, repo_id, refs, private, gated)
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            _settings(api, repo_id, private, gated, report)
            rerender(stage, repo_id, access=report.access)  # the card and Croissant say what the Hub reported
            title = f"{manifest['name']} {manifest['version']}"
            if restoring:
                info = _commit(api, repo_id, stage, main, f"{title} (restored to main)",
                               f"main holds {tag} (commit {report.tag_commit}) again.", report)
                report.notes.append(f"main restored to {tag}: commit {info.oid} holds its files")
                return report
            if tagged:
                _refresh(api, repo_id, stage, main, title, tag, report)
                return report
            info = _commit(api, repo_id, stage, main, title, f"Release {tag} of {manifest['name']} (cxrsynth "
                           f"{manifest['code_version']}); {manifest['counts']['all']:,} images.", report)
            try:
                api.create_tag(repo_id, tag=tag, revision=info.oid, repo_type="dataset",
                               tag_message=f"{manifest['name']} {manifest['version']}")
            except HfHubHTTPError as exc:
                if getattr(exc.response, "status_code", None) != 409:
                    raise
                other = (_refs(api, repo_id) or {"tags": {}})["tags"].get(tag)
                raise PushError(f"tag {tag} appeared on commit {other} while this push made commit {info.oid}", repo_id,
                                "someone else pushed this version: compare the two and bump the version") from None
            marked = (_refs(api, repo_id) or {"tags": {}})["tags"].get(tag)
            if marked != info.oid:
                raise PushError(f"tag {tag} marks commit {marked}, not the commit just made ({info.oid})", repo_id)
            report.tag_commit = info.oid
        except HfHubHTTPError as exc:
            # The message names the URL and status; it never holds the token.
            raise PushError("the Hub refused the push", repo_id, str(exc).splitlines()[0][:300]) from exc
        except ValueError as exc:  # huggingface_hub's own refusals (e.g. the card's YAML, validated again)
            raise PushError("the Hub refused the push", repo_id, " ".join(str(exc).split())[:300]) from exc
    return report


def _refresh(api, repo_id: str, stage: Path, main: dict[str, str], title: str, tag: str, report: PushReport) -> None:
    """``main`` already serves this version: render its card and Croissant again when the access or the
    contact changed (the tag keeps the files it was published with), else nothing to do."""
    changed, unchanged, gone = _diff(stage, _stage_files(stage), main)
    if not changed and not gone:
        report.unchanged = unchanged
        report.notes.append(f"{tag} is already published with these files (commit {report.tag_commit}) and main "
                            "serves it; nothing to upload")
        return
    _commit(api, repo_id, stage, main, f"{title}: card and Croissant rendered again",
            f"Access {report.access}; contact {report.contact}. The tag {tag} keeps the files it was published with.",
            report)
    report.notes.append(f"main serves {tag}; its {', '.join(changed)} rendered again (access {report.access}); "
                        f"tag {tag} keeps the files it was published with")


def _check(folder: Path, release: Path) -> None:
    problems = verify(folder, find_private(release))
    if problems:
        raise PushError(f"the release does not verify ({len(problems)} problems, first: {problems[0]})", release,
                        "run `cxrsynth verify` and fix it first")


def _refs(api, repo_id: str) -> dict | None:
    """{"tags": {name: commit}, "main": commit or None}, or None when the repo does not exist."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        return None
    return {"tags": {t.name: t.target_commit for t in refs.tags},
            "main": next((b.target_commit for b in refs.branches if b.name == "main"), None)}


def _already_tagged(api, repo_id: str, tag: str, refs: dict, stage: Path, files: list[str], report: PushReport) -> bool:
    """A tag names one set of files for ever: the same files are this version, published (True); others
    are refused. Whether ``main`` still holds it is :func:`_main_holds_other`'s question."""
    commit = refs["tags"][tag]
    differ = _version_diff(api, repo_id, commit, stage, files, _remote_tree(api, repo_id, commit))
    if differ:
        raise PushError(f"tag {tag} already marks commit {commit} with other files ({len(differ)} differ, are new or "
                        f"are absent here, e.g. {differ[0]}); main is at commit {refs['main']}", repo_id,
                        "a published version never changes: bump the version (release --version) and push that")
    report.tag_commit = commit
    return True


#: Rendered at push time from the manifest, the repo id and the repo's access: they may differ between two
#: pushes of one version (a changed gating, a newer renderer) without it being another version.
RENDERED = ("README.md", "croissant.json", "SHA256SUMS")


def _version_diff(api, repo_id: str, commit: str | None, stage: Path, files: list[str], tree: dict[str, str]) -> list[str]:
    """The files that make ``stage`` another version than the one at ``commit`` (files ``tree``): data,
    provenance, sample grid and manifest, less the rendered files and the manifest's contact."""
    changed, _, gone = _diff(stage, files, tree)
    differ = [f for f in changed + gone if f not in RENDERED]
    if MANIFEST in differ and commit is not None:
        theirs = _remote_manifest(api, repo_id, commit) or {}
        ours = ReleaseFolder(stage).manifest()
        if {k: v for k, v in theirs.items() if k != "contact"} == {k: v for k, v in ours.items() if k != "contact"}:
            differ.remove(MANIFEST)
    return differ


VERSION_TAG = re.compile(r"v(\d+)\.(\d+)\.(\d+)")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def newest_version_tag(tags) -> str | None:
    """The highest ``vX.Y.Z`` tag among ``tags`` by number (v1.0.10 above v1.0.9); other tags do not count."""
    versions = [t for t in tags if VERSION_TAG.fullmatch(t)]
    return max(versions, key=lambda t: _version_key(t[1:]), default=None)


def _check_order(refs: dict | None, version: str, tag: str, allow_older: bool, restoring: bool,
                 report: PushReport) -> None:
    """Refuse to move ``main`` to a version lower than the highest published one, unless ``allow_older``."""
    newest = newest_version_tag((refs or {"tags": {}})["tags"])
    if newest is None or _version_key(version) >= _version_key(newest[1:]):
        return
    doing = f"restoring {tag} to main" if restoring else f"publishing {version}"
    if not allow_older:
        raise PushError(f"version {version} is older than the newest published version {newest}", tag,
                        f"{doing} would make main (what load_dataset reads without a revision) serve the older "
                        "version: bump the version, or pass --allow-older if that is what you want")
    report.notes.append(f"main now serves {version}, older than {newest} (--allow-older)")


def _main_holds_other(api, repo_id: str, tag: str, refs: dict, stage: Path, files: list[str], main: dict[str, str],
                      restore_main: bool, report: PushReport) -> bool:
    """Whether ``main`` must be given this (already tagged) version's files again: False when it holds
    them; True with ``restore_main`` when it holds another version; else a refusal that names it."""
    if not _version_diff(api, repo_id, refs["main"], stage, files, main):
        return False
    held = _remote_version(api, repo_id, refs["main"])
    if not restore_main:
        raise PushError(f"{tag} is already published with these files (commit {report.tag_commit}), but main "
                        f"(commit {refs['main']}) holds {held}, so load_dataset(\"{repo_id}\") without a revision "
                        f"serves that", repo_id, f"pass --restore-main to commit {tag}'s files to main")
    report.notes.append(f"main held {held}")
    return True


def _remote_manifest(api, repo_id: str, commit: str) -> dict | None:
    """The manifest at ``commit`` (None when there is none or it does not parse)."""
    from huggingface_hub.errors import EntryNotFoundError

    try:
        data = json.loads(Path(api.hf_hub_download(repo_id, MANIFEST, repo_type="dataset", revision=commit)).read_text())
    except (EntryNotFoundError, ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _remote_version(api, repo_id: str, commit: str | None) -> str:
    """'version X' of the manifest at ``commit``, in words ('no release' when there is none)."""
    if commit is None:
        return "no release"
    manifest = _remote_manifest(api, repo_id, commit)
    return f"version {manifest.get('version')}" if manifest else "no readable manifest"
