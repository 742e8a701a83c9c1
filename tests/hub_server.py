"""A loopback Hugging Face Hub for tests: the routes a push and a pull use, in a stdlib HTTP server.

The real ``huggingface_hub`` client (and timm's ``hf-hub:`` loader) talk to it over HTTP on
127.0.0.1 (port 0: the OS picks a free one). Implemented (see ../shared/design/OFFLINE.md):

* ``POST /api/repos/create`` (409 + JSON ``url`` when it exists), ``POST /api/validate-yaml``
* ``POST /api/models/{repo}/preupload/{rev}`` — "regular" (inline) for every file, or "lfs" for
  files of at least ``lfs_threshold`` bytes
* ``POST /{repo}.git/info/lfs/objects/batch`` + ``PUT`` upload + ``POST`` verify (LFS basic transfer)
* ``POST /api/models/{repo}/commit/{rev}`` (NDJSON: header, file, lfsFile, deletedFile)
* ``GET /api/models/{repo}[/revision/{rev}]``, ``GET /api/models/{repo}/tree/{rev}``
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` (``X-Repo-Commit``, ``ETag``; LFS: ``X-Linked-Etag``,
  ``X-Linked-Size``)

Auth: writes need ``Authorization: Bearer <token>`` with the configured token (401 otherwise, with
the header the real Hub sends for bad credentials); private repos answer 401 + ``RepoNotFound`` to
anyone else. Unknown repo / revision / file: 404 with ``X-Error-Code`` RepoNotFound /
RevisionNotFound / EntryNotFound. Bounded: bodies over ``max_body`` are refused (413) and the
server stops itself after ``lifetime_s`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REPO = r"(?P<repo>[^/]+/[^/]+?)"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


@dataclass
class Repo:
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: content}
    branches: dict[str, str] = field(default_factory=dict)
    lfs_paths: dict[str, set[str]] = field(default_factory=dict)  # sha -> paths stored as LFS

    def resolve(self, rev: str) -> str | None:
        if rev in self.branches:
            return self.branches[rev]
        return rev if rev in self.commits else None


class HubState:
    def __init__(self, token: str, lfs_threshold: int | None):
        self.token, self.lfs_threshold = token, lfs_threshold
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def body(self) -> bytes:
        size = int(self.headers.get("Content-Length") or 0)
        if size > self.server.max_body:
            raise _Reply(413, {"error": "body too large"})
        return self.rfile.read(size) if size else b""

    def send(
        self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None, head: bool = False
    ) -> None:
        data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
        self.send_response(status)
        ctype = "application/octet-stream" if raw is not None else "application/json"
        for key, value in {"Content-Type": ctype, "Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.state.token}"

    def need_write(self) -> None:
        if not self.authorized():
            raise _Reply(
                401,
                {"error": "Invalid credentials in Authorization header"},
                {"X-Error-Message": "Invalid credentials in Authorization header"},
            )

    def repo(self, repo_id: str, *, write: bool = False) -> Repo:
        if write:
            self.need_write()
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and not self.authorized()):
            status = 401 if repo is not None else 404
            raise _Reply(status, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return repo

    def commit(self, repo: Repo, rev: str) -> str:
        sha = repo.resolve(unquote(rev))
        if sha is None:
            raise _Reply(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
        return sha

    def dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.state.log.append((method, path))
        for verb, pattern, handler in ROUTES:
            match = re.fullmatch(pattern, path)
            if match and (verb == method or (verb == "GET" and method == "HEAD")):
                try:
                    with self.state.lock:
                        handler(self, query=query, head=method == "HEAD", **match.groupdict())
                except _Reply as reply:
                    self.send(reply.status, reply.payload, reply.headers, head=method == "HEAD")
                return
        self.send(404, {"error": f"no route {method} {path}"})

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    # -- routes -----------------------------------------------------------------------------------

    def create_repo(self, **_):
        self.need_write()
        req = json.loads(self.body() or b"{}")
        repo_id = f"{req.get('organization') or 'user'}/{req['name']}"
        url = f"{self.base}/{repo_id}"
        if repo_id in self.state.repos:
            raise _Reply(409, {"error": "You already created this model repo", "url": url})
        private = bool(req.get("private")) or req.get("visibility") == "private"
        self.state.repos[repo_id] = Repo(private=private)
        self.send(200, {"url": url, "name": repo_id})

    def validate_yaml(self, **_):
        self.body()
        self.send(200, {"errors": [], "warnings": []})

    def preupload(self, repo, rev, **_):
        self.repo(repo, write=True)
        files = json.loads(self.body())["files"]
        limit = self.state.lfs_threshold
        modes = [
            {
                "path": f["path"],
                "uploadMode": "lfs" if limit is not None and f["size"] >= limit else "regular",
                "shouldIgnore": False,
                "oid": None,
            }
            for f in files
        ]
        self.send(200, {"files": modes, "commitOid": self.state.repos[repo].branches.get(unquote(rev))})

    def lfs_batch(self, repo, **_):
        self.repo(repo, write=True)
        objects = []
        for obj in json.loads(self.body())["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.lfs:
                item["actions"] = {
                    "upload": {"href": f"{self.base}/lfs-upload/{obj['oid']}"},
                    "verify": {"href": f"{self.base}/lfs-verify/{obj['oid']}"},
                }
            objects.append(item)
        self.send(200, {"transfer": "basic", "objects": objects})

    def lfs_upload(self, oid, **_):
        data = self.body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise _Reply(400, {"error": "sha256 mismatch"})
        self.state.lfs[oid] = data
        self.send(200, {})

    def lfs_verify(self, oid, **_):
        self.need_write()
        self.body()
        self.send(200 if oid in self.state.lfs else 404, {})

    def commit_route(self, repo, rev, **_):
        repo_obj = self.repo(repo, write=True)
        rev = unquote(rev)
        parent = repo_obj.branches.get(rev)
        files = dict(repo_obj.commits.get(parent, {})) if parent else {}
        lfs_paths = set(repo_obj.lfs_paths.get(parent, set())) if parent else set()
        for line in self.body().splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                lfs_paths.discard(value["path"])
            elif key == "lfsFile":
                if value["oid"] not in self.state.lfs:
                    raise _Reply(400, {"error": f"LFS object {value['oid']} was not uploaded"})
                files[value["path"]] = self.state.lfs[value["oid"]]
                lfs_paths.add(value["path"])
            elif key in ("deletedFile", "deletedFolder"):
                files = {p: c for p, c in files.items() if p != value["path"] and not p.startswith(value["path"] + "/")}
        digest = hashlib.sha1(
            json.dumps([parent, sorted((p, git_blob_sha(c)) for p, c in files.items()), time.time_ns()]).encode()
        ).hexdigest()
        repo_obj.commits[digest], repo_obj.lfs_paths[digest] = files, lfs_paths
        repo_obj.branches[rev] = digest
        self.send(
            200,
            {
                "commitOid": digest,
                "commitUrl": f"{self.base}/{repo}/commit/{digest}",
                "pullRequestUrl": None,
                "success": True,
            },
        )

    def info(self, repo, rev="main", head=False, **_):
        repo_obj = self.repo(repo)
        sha = self.commit(repo_obj, rev)
        siblings = [{"rfilename": p} for p in sorted(repo_obj.commits[sha])]
        self.send(
            200,
            {
                "id": repo,
                "modelId": repo,
                "sha": sha,
                "private": repo_obj.private,
                "siblings": siblings,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "tags": [],
                "library_name": "timm",
            },
            head=head,
        )

    def tree(self, repo, rev, head=False, **_):
        repo_obj = self.repo(repo)
        sha = self.commit(repo_obj, rev)
        entries = []
        for path, content in sorted(repo_obj.commits[sha].items()):
            entry = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha(content)}
            if path in repo_obj.lfs_paths[sha]:
                pointer = lfs_pointer(content)
                entry["oid"] = git_blob_sha(pointer)
                entry["lfs"] = {
                    "oid": hashlib.sha256(content).hexdigest(),
                    "size": len(content),
                    "pointerSize": len(pointer),
                }
            entries.append(entry)
        self.send(200, entries, head=head)

    def resolve(self, repo, rev, file, head=False, **_):
        repo_obj = self.repo(repo)
        sha = self.commit(repo_obj, rev)
        content = repo_obj.commits[sha].get(file)
        if content is None:
            raise _Reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha(content)}"', "Accept-Ranges": "bytes"}
        if file in repo_obj.lfs_paths[sha]:
            headers.update(
                {
                    "X-Linked-Etag": f'"{hashlib.sha256(content).hexdigest()}"',
                    "X-Linked-Size": str(len(content)),
                    "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
                }
            )
        self.send(200, raw=content, headers=headers, head=head)


ROUTES = [
    ("POST", r"/api/repos/create", Handler.create_repo),
    ("POST", r"/api/validate-yaml", Handler.validate_yaml),
    ("POST", rf"/api/models/{REPO}/preupload/(?P<rev>.+)", Handler.preupload),
    ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", Handler.lfs_batch),
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", Handler.lfs_upload),
    ("POST", r"/lfs-verify/(?P<oid>[0-9a-f]{64})", Handler.lfs_verify),
    ("POST", rf"/api/models/{REPO}/commit/(?P<rev>.+)", Handler.commit_route),
    ("GET", rf"/api/models/{REPO}/revision/(?P<rev>[^/]+)", Handler.info),
    ("GET", rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?:/.*)?", Handler.tree),
    ("GET", rf"/api/models/{REPO}", Handler.info),
    ("GET", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", Handler.resolve),
]


class _Reply(Exception):
    def __init__(self, status: int, payload: dict, headers: dict | None = None):
        super().__init__(status)
        self.status, self.payload, self.headers = status, payload, headers or {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    max_body: int


class LoopbackHub:
    """``with LoopbackHub(token="hf_x") as hub: hub.url`` — a Hub on 127.0.0.1 for one test (or module)."""

    def __init__(
        self,
        token: str = "hf_loopback_token",
        lfs_threshold: int | None = None,
        lifetime_s: float = 600.0,
        max_body: int = 64 << 20,
    ):
        self.state = HubState(token, lfs_threshold)
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.state, self.server.max_body = self.state, max_body
        self.lifetime_s = lifetime_s
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> LoopbackHub:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def requests(self, method: str | None = None) -> list[str]:
        return [p for m, p in self.state.log if method is None or m == method]
