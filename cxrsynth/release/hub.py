"""``cxrsynth push``: upload a verified release folder to the Hugging Face Hub (or any server that
speaks its HTTP protocol, through ``HF_ENDPOINT``).

Create the repo (``exist_ok``), compare the remote tree with the local files by sha256 / git blob id,
upload only what is missing or changed in commits of at most ``files_per_commit`` files (small commits,
as the Hub advises), then tag the release. An interrupted push leaves its finished commits in place, so a
rerun uploads only the rest and makes no duplicate commit; with nothing to upload it makes no commit.
The token comes from ``HF_TOKEN`` or the token file as usual and is never printed; the private folder
beside the release is never uploaded (only the folder given is).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, CxrsynthError
from ..paths import read_json, sha256_file
from .verify import verify


class PushError(CxrsynthError):
    """The Hub refused or failed a push."""


@dataclass
class PushReport:
    repo_id: str
    revision: str = "main"
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    tag: str | None = None
    dry_run: bool = False


def _git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _remote_files(api, repo_id: str, revision: str) -> dict[str, dict]:
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    try:
        items = api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True)
        out = {}
        for it in items:
            if getattr(it, "blob_id", None) is None:
                continue  # a folder
            lfs = getattr(it, "lfs", None)
            out[it.path] = {"sha256": lfs.sha256 if lfs else None, "blob": it.blob_id}
        return out
    except (EntryNotFoundError, RevisionNotFoundError):
        return {}


def push(release: str | Path, repo_id: str, tag: str | None = None, private: bool = False, dry_run: bool = False,
         files_per_commit: int = 50, token: str | None = None, check: bool = True) -> PushReport:
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    root = Path(release)
    if "/" not in repo_id:
        raise ConfigError("repo id must be ORG/NAME", repo_id)
    if check:
        problems = verify(root)
        if problems:
            raise PushError(f"the release does not verify ({len(problems)} problems, first: {problems[0]})", root,
                            "run `cxrsynth verify` and fix it first")
    manifest = read_json(root / "manifest.json")
    tag = tag or f"v{manifest['version']}"
    local = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    report = PushReport(repo_id=repo_id, tag=tag, dry_run=dry_run)
    api = HfApi(token=token)
    try:
        if not dry_run:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        remote = {} if dry_run else _remote_files(api, repo_id, "main")
        todo = []
        for rel, path in local.items():
            r = remote.get(rel)
            same = r is not None and ((r["sha256"] and r["sha256"] == sha256_file(path)) or r["blob"] == _git_blob_sha1(path))
            (report.unchanged if same else todo).append(rel)
        # README.md last: the card appears once the data it describes is there.
        todo.sort(key=lambda rel: (rel == "README.md", rel))
        report.uploaded = todo
        if dry_run:
            return report
        for start in range(0, len(todo), files_per_commit):
            chunk = todo[start:start + files_per_commit]
            ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(local[rel])) for rel in chunk]
            info = api.create_commit(repo_id, ops, repo_type="dataset",
                                     commit_message=f"{manifest['name']} {manifest['version']}: {len(chunk)} files "
                                                    f"({start + len(chunk)}/{len(todo)})")
            report.commits.append(info.oid)
        existing = {t.name for t in api.list_repo_refs(repo_id, repo_type="dataset").tags}
        if tag not in existing:
            api.create_tag(repo_id, tag=tag, repo_type="dataset", tag_message=f"{manifest['name']} {manifest['version']}")
    except HfHubHTTPError as exc:
        # The message names the URL and status; it never holds the token.
        raise PushError("the Hub refused the push", repo_id, str(exc).splitlines()[0][:300]) from exc
    return report
