"""A tiny stand-in for the Hugging Face Hub's HTTP API, for tests only. NOT a product.

It keeps dataset repos in memory and speaks just the endpoints that ``huggingface_hub`` 2.x and
``datasets`` use to create a repo, upload (preupload, Git LFS batch / PUT / verify with
``HF_HUB_DISABLE_XET=1``, NDJSON commit), tag, list refs and trees, and to resolve and download files
at a revision: enough for ``cxrsynth push`` and ``load_dataset("ORG/NAME", revision=...)`` through
``HF_ENDPOINT``. It binds 127.0.0.1 only, accepts any bearer token and remembers which it saw.

Like the Hub it: deletes files in a commit (``deletedFile`` / ``deletedFolder``), tags a given revision
and refuses an existing tag (409), answers ``preupload`` with the remote file's oid (so the client skips
unchanged files), keeps visibility and gating (``PUT .../settings``), and rejects in ``validate-yaml``
what the Hub rejects in the card fields cxrsynth writes: a licence id outside the Hub's list, "other"
without ``license_name`` / ``license_link``, a size category outside the list, an unknown task category,
a malformed ``configs`` list and malformed ``extra_gated_fields``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

LFS_SUFFIXES = (".parquet", ".png", ".jpg", ".safetensors", ".bin")

# The Hub's licence ids (https://huggingface.co/docs/hub/repositories-licenses).
HUB_LICENSES = {
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research",
    "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openrail++",
    "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license",
    "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma",
    "unknown", "other",
}
SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B", "1B<n<10B",
                   "10B<n<100B", "100B<n<1T", "n>1T", "other"}
TASK_CATEGORIES = {"image-classification", "image-to-image", "image-segmentation", "object-detection",
                   "unconditional-image-generation", "text-to-image", "image-to-text", "zero-shot-image-classification",
                   "image-feature-extraction", "other"}
GATED_TYPES = {"text", "checkbox", "date_picker", "country"}


def yaml_errors(content: str) -> list[str]:
    """What the Hub's ``validate-yaml`` says about the card fields cxrsynth writes (empty: accepted)."""
    import re

    import yaml

    if not content.startswith("---\n"):
        return []
    end = content.find("\n---", 4)
    try:
        meta = yaml.safe_load(content[4:end]) or {}
    except yaml.YAMLError as exc:
        return [f"YAML does not parse: {str(exc).splitlines()[0]}"]
    errors = []
    as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    for lic in as_list(meta.get("license", [])):
        if lic not in HUB_LICENSES:
            errors.append(f'"license" must be a license id from the list, got "{lic}"')
    if "other" in as_list(meta.get("license", [])):
        if not re.fullmatch(r"[a-z0-9.-]+", str(meta.get("license_name", ""))):
            errors.append('"license_name" is required with license "other" (lower case letters, digits, "-" and ".")')
        if not meta.get("license_link"):
            errors.append('"license_link" is required with license "other"')
    for size in as_list(meta.get("size_categories", [])):
        if size not in SIZE_CATEGORIES:
            errors.append(f'"size_categories" must be one of the size categories, got "{size}"')
    for task in as_list(meta.get("task_categories", [])):
        if task not in TASK_CATEGORIES:
            errors.append(f'"task_categories" has an unknown task "{task}"')
    configs = meta.get("configs", [])
    if not isinstance(configs, list):
        errors.append('"configs" must be a list')
        configs = []
    for c in configs:
        if not isinstance(c, dict) or not isinstance(c.get("config_name"), str):
            errors.append('"configs" items must be mappings with a "config_name"')
            continue
        files = c.get("data_files")
        ok = files is None or isinstance(files, str) or (isinstance(files, list) and all(
            isinstance(f, str) or (isinstance(f, dict) and set(f) == {"split", "path"}) for f in files))
        if not ok:
            errors.append(f'"configs.{c["config_name"]}.data_files" must be a path, a list of paths or of {{split, path}}')
    if sum(bool(isinstance(c, dict) and c.get("default")) for c in configs) > 1:
        errors.append('"configs" has more than one default config')
    fields = meta.get("extra_gated_fields")
    if fields is not None:
        if not isinstance(fields, dict):
            errors.append('"extra_gated_fields" must be a mapping')
        else:
            for name, kind in fields.items():
                if not (kind in GATED_TYPES or (isinstance(kind, dict) and kind.get("type") == "select"
                                                and isinstance(kind.get("options"), list))):
                    errors.append(f'"extra_gated_fields.{name}" has an invalid type')
    if "extra_gated_prompt" in meta and not isinstance(meta["extra_gated_prompt"], str):
        errors.append('"extra_gated_prompt" must be a string')
    return errors


@dataclass
class Entry:
    size: int
    sha256: str
    blob: str  # git blob sha1 (of the content, or of the LFS pointer)
    content: bytes | None = None  # regular files
    lfs: bool = False


@dataclass
class Repo:
    private: bool = False
    gated: str | bool = False
    commits: dict[str, dict[str, Entry]] = field(default_factory=dict)  # oid -> files
    branches: dict[str, str | None] = field(default_factory=lambda: {"main": None})
    tags: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def _blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubState:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.tokens_seen: set[str] = set()
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.fail_commits_after: int | None = None  # tests: simulate an interrupted push

    def resolve(self, repo: Repo, rev: str) -> str | None:
        rev = unquote(rev)
        if rev in repo.branches:
            return repo.branches[rev]
        if rev in repo.tags:
            return repo.tags[rev]
        return rev if rev in repo.commits else None


class Handler(BaseHTTPRequestHandler):
    state: HubState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    # --- helpers -------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes | dict | list = b"", headers: dict | None = None, head_only=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only and body:
            self.wfile.write(body)

    def _error(self, code: int, error_code: str, message: str, head_only=False):
        self._send(code, {"error": message}, {"X-Error-Code": error_code, "X-Error-Message": message}, head_only)

    def _body(self) -> bytes:
        return self._raw

    def _auth(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self.state.tokens_seen.add(auth[7:])

    def _repo(self, repo_id: str, head_only=False) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head_only)
        return repo

    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    # --- routing -------------------------------------------------------------------------------
    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def _dispatch(self, method: str):
        # Always read the whole body: on a kept-alive connection unread bytes would garble the next request.
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""
        self._auth()
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        self.state.requests.append(f"{method} {url.path}")
        with self.state.lock:
            try:
                self._route(method, parts, query)
            except Exception as exc:  # a test server: report, do not die
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _route(self, method, parts, query):
        p = parts
        if method == "POST" and p[:3] == ["api", "repos", "create"]:
            return self.create_repo()
        if method == "POST" and p[:2] == ["api", "validate-yaml"]:
            errors = yaml_errors(json.loads(self._body() or b"{}").get("content", ""))
            return self._send(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})
        if p[:2] == ["api", "datasets"] and len(p) >= 4:
            repo_id, rest = f"{p[2]}/{p[3]}", p[4:]
            if not rest and method == "GET":
                return self.repo_info(repo_id, "main")
            if rest[:1] == ["revision"] and method == "GET":
                return self.repo_info(repo_id, "/".join(rest[1:]))
            if rest[:1] == ["preupload"] and method == "POST":
                return self.preupload(repo_id, "/".join(rest[1:]))
            if rest[:1] == ["settings"] and method == "PUT":
                return self.settings(repo_id)
            if rest[:1] == ["commit"] and method == "POST":
                return self.commit(repo_id, "/".join(rest[1:]))
            if rest[:1] == ["tag"] and method == "POST":
                return self.tag(repo_id, "/".join(rest[1:]))
            if rest[:1] == ["refs"] and method == "GET":
                return self.refs(repo_id)
            if rest[:1] == ["tree"] and method == "GET":
                return self.tree(repo_id, rest[1], "/".join(rest[2:]), query)
            if rest[:1] == ["paths-info"] and method == "POST":
                return self.paths_info(repo_id, rest[1])
        if p[:1] == ["datasets"] and len(p) >= 3 and p[2].endswith(".git") and p[3:] == ["info", "lfs", "objects", "batch"]:
            return self.lfs_batch(f"{p[1]}/{p[2][:-4]}")
        if p[:1] == ["lfs-upload"] and method == "PUT":
            return self.lfs_put(p[1])
        if p[:1] == ["lfs-verify"] and method == "POST":
            return self._send(200 if p[1] in self.state.lfs else 404, {})
        if p[:1] == ["datasets"] and len(p) >= 5 and p[3] == "resolve":
            return self.resolve_file(f"{p[1]}/{p[2]}", p[4], "/".join(p[5:]), head_only=method == "HEAD")
        return self._error(404, "EntryNotFound", f"no route {method} {self.path}", method == "HEAD")

    # --- endpoints -----------------------------------------------------------------------------
    def create_repo(self):
        body = json.loads(self._body() or b"{}")
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        url = f"{self._base()}/datasets/{repo_id}"
        if repo_id in self.state.repos:
            return self._send(409, {"error": "You already created this dataset repo", "url": url})
        self.state.repos[repo_id] = Repo(private=body.get("visibility") == "private" or bool(body.get("private")))
        return self._send(200, {"url": url, "name": repo_id})

    def _files(self, repo: Repo, rev: str) -> dict[str, Entry] | None:
        oid = self.state.resolve(repo, rev)
        if oid is None and unquote(rev) == "main":
            return {}
        return None if oid is None else repo.commits[oid]

    def _files_or_404(self, repo_id, rev) -> dict[str, Entry] | None:
        """The files at ``rev``, or None after answering 404 (unknown repo or revision)."""
        repo = self._repo(repo_id)
        if repo is None:
            return None
        files = self._files(repo, rev)
        if files is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return files

    def repo_info(self, repo_id, rev):
        repo = self._repo(repo_id)
        if repo is None:
            return
        oid = self.state.resolve(repo, rev)
        if oid is None and unquote(rev) != "main":
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        files = repo.commits.get(oid, {}) if oid else {}
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return self._send(200, {
            "_id": repo_id, "id": repo_id, "author": repo_id.split("/")[0], "sha": oid, "private": repo.private,
            "disabled": False, "gated": repo.gated, "downloads": 0, "likes": 0, "tags": [], "lastModified": now,
            "createdAt": now, "siblings": [{"rfilename": p} for p in sorted(files)], "cardData": {},
        })

    def preupload(self, repo_id, rev):
        repo = self._repo(repo_id)
        if repo is None:
            return
        body = json.loads(self._body())
        remote = self._files(repo, rev) or {}
        files = []
        for f in body["files"]:
            e = remote.get(f["path"])
            files.append({"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) or f["size"] > 1_000_000
                          else "regular", "shouldIgnore": False,
                          # as the Hub: the remote file's oid (sha256 for LFS, git blob id otherwise)
                          "oid": None if e is None else (e.sha256 if e.lfs else e.blob)})
        return self._send(200, {"files": files, "commitOid": None})

    def settings(self, repo_id):
        repo = self._repo(repo_id)
        if repo is None:
            return
        body = json.loads(self._body() or b"{}")
        if "gated" in body:
            if body["gated"] not in ("auto", "manual", False):
                return self._send(400, {"error": f"invalid gated value {body['gated']!r}"})
            repo.gated = body["gated"]
        if "visibility" in body:
            repo.private = body["visibility"] == "private"
        if "private" in body:
            repo.private = bool(body["private"])
        return self._send(200, {})

    def lfs_batch(self, repo_id):
        if self._repo(repo_id) is None:
            return
        body = json.loads(self._body())
        objects = []
        for obj in body["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.lfs:
                item["authenticated"] = True
                item["actions"] = {"upload": {"href": f"{self._base()}/lfs-upload/{obj['oid']}"},
                                   "verify": {"href": f"{self._base()}/lfs-verify/{obj['oid']}"}}
            objects.append(item)
        return self._send(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_put(self, oid):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._send(400, {"error": "sha256 mismatch"})
        self.state.lfs[oid] = data
        return self._send(200, {})

    def commit(self, repo_id, rev):
        repo = self._repo(repo_id)
        if repo is None:
            return
        st = self.state
        if st.fail_commits_after is not None:
            if st.fail_commits_after <= 0:
                return self._send(503, {"error": "simulated outage"})
            st.fail_commits_after -= 1
        lines = [json.loads(x) for x in self._body().splitlines() if x.strip()]
        parent = st.resolve(repo, rev)
        files = dict(repo.commits.get(parent, {})) if parent else {}
        summary = ""
        for line in lines:
            key, v = line["key"], line["value"]
            if key == "header":
                summary = v.get("summary", "")
            elif key == "file":
                data = base64.b64decode(v["content"])
                files[v["path"]] = Entry(len(data), hashlib.sha256(data).hexdigest(), _blob(data), content=data)
            elif key == "lfsFile":
                if v["oid"] not in st.lfs:
                    return self._send(422, {"error": f"LFS object {v['oid']} was never uploaded"})
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{v['oid']}\nsize {v['size']}\n".encode()
                files[v["path"]] = Entry(v["size"], v["oid"], _blob(pointer), lfs=True)
            elif key == "deletedFile":
                files.pop(v["path"], None)
            elif key == "deletedFolder":
                files = {k: e for k, e in files.items() if not k.startswith(v["path"].rstrip("/") + "/")}
        oid = hashlib.sha1(f"{parent}|{summary}|{len(repo.commits)}|{sorted((k, e.sha256) for k, e in files.items())}".encode()).hexdigest()
        repo.commits[oid] = files
        repo.branches[unquote(rev)] = oid
        repo.log.append(summary)
        return self._send(200, {"commitUrl": f"{self._base()}/datasets/{repo_id}/commit/{oid}", "commitOid": oid,
                                "pullRequestUrl": None})

    def tag(self, repo_id, rev):
        repo = self._repo(repo_id)
        if repo is None:
            return
        body = json.loads(self._body())
        if body["tag"] in repo.tags:
            return self._send(409, {"error": f"Tag {body['tag']} already exists"})
        oid = self.state.resolve(repo, rev)
        if oid is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        repo.tags[body["tag"]] = oid
        return self._send(200, {})

    def refs(self, repo_id):
        repo = self._repo(repo_id)
        if repo is None:
            return
        return self._send(200, {
            "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": o} for b, o in repo.branches.items() if o],
            "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": o} for t, o in repo.tags.items()],
            "converts": []})

    @staticmethod
    def _entry_json(path: str, e: Entry) -> dict:
        out = {"type": "file", "oid": e.blob, "size": e.size, "path": path}
        if e.lfs:
            out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": 134}
        return out

    def tree(self, repo_id, rev, path, query):
        files = self._files_or_404(repo_id, rev)
        if files is None:
            return
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and not any(k.startswith(prefix) for k in files):
            return self._error(404, "EntryNotFound", f"{path} does not exist at {rev}")
        out, dirs = [], set()
        for k in sorted(files):
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                d = prefix + "/".join(parts[:i])
                if (recursive or i == 1) and d not in dirs:
                    dirs.add(d)
                    out.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d})
            if recursive or len(parts) == 1:
                out.append(self._entry_json(k, files[k]))
        return self._send(200, out)

    def paths_info(self, repo_id, rev):
        files = self._files_or_404(repo_id, rev)
        if files is None:
            return
        raw = self._body()
        ctype = self.headers.get("Content-Type", "")
        paths = json.loads(raw).get("paths", []) if "json" in ctype else parse_qs(raw.decode()).get("paths", [])
        out = []
        for p in paths:
            if p in files:
                out.append(self._entry_json(p, files[p]))
            elif any(k.startswith(p.rstrip("/") + "/") for k in files):
                out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0, "path": p})
        return self._send(200, out)

    def resolve_file(self, repo_id, rev, path, head_only):
        repo = self._repo(repo_id, head_only)
        if repo is None:
            return
        oid = self.state.resolve(repo, rev)
        if oid is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head_only)
        e = repo.commits[oid].get(path)
        if e is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist at {rev}", head_only)
        data = self.state.lfs[e.sha256] if e.lfs else e.content
        headers = {"X-Repo-Commit": oid, "ETag": f'"{e.sha256 if e.lfs else e.blob}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if e.lfs:
            headers.update({"X-Linked-Etag": f'"{e.sha256}"', "X-Linked-Size": e.size})
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and not head_only:
            start_s, end_s = rng[6:].split("-", 1)
            start = int(start_s) if start_s else max(0, len(data) - int(end_s))
            end = int(end_s) if (end_s and start_s) else len(data) - 1
            chunk = data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(chunk) - 1}/{len(data)}"
            return self._send(206, chunk, headers)
        if head_only:
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        return self._send(200, data, headers)


class LocalHub:
    """``with LocalHub() as hub: os.environ["HF_ENDPOINT"] = hub.url``"""

    def __init__(self):
        self.state = HubState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
