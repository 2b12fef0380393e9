"""A small Hugging Face Hub stand-in on loopback, for real HTTP round trips in the tests (no mocks of `HfApi`).

It speaks the part of the Hub API that `huggingface_hub` uses to publish and download a model repository:

- `POST /api/repos/create` (409 when the repository exists, 403 outside the token's namespace),
- `POST /api/validate-yaml` (the card metadata must be a YAML mapping),
- `POST /api/models/{repo}/preupload/{revision}` (every file is a "regular" upload: no LFS, no Xet),
- `POST /api/models/{repo}/commit/{revision}` (NDJSON with base64 files),
- `GET /api/models/{repo}[/revision/{revision}]`, `GET /api/models/{repo}/tree/{revision}[/{path}]`,
- `HEAD`/`GET /{repo}/resolve/{revision}/{path}` with the `ETag` / `X-Repo-Commit` headers the download code reads.

Writes need a known token (`Authorization: Bearer ...`); private repositories are invisible (404 `RepoNotFound`)
to anyone but their owner, as on the Hub. `fail(...)` makes the next matching requests fail with a given status, to
test error handling. Run it by hand with `python tests/fake_hub.py` (prints the endpoint; Ctrl-C stops it).
"""

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


USER = "tester"
TOKEN = "hf_fake_write_token_for_tests"
OTHER_USER = "someone-else"
OTHER_TOKEN = "hf_fake_token_of_someone_else"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: list = field(default_factory=list)  # [(oid, message, {path: bytes})], oldest first

    @property
    def head(self) -> tuple:
        return self.commits[-1]

    def files(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if revision == "main":
            return self.head[0], self.head[2]
        for oid, _, files in self.commits:
            if oid == revision:
                return oid, files
        return None


class FakeHub(ThreadingHTTPServer):
    """The server. `FakeHub.start()` serves on a free loopback port in a daemon thread; `endpoint` is its URL."""

    daemon_threads = True

    def __init__(self, address=("127.0.0.1", 0)):
        super().__init__(address, _Handler)
        self.repos: dict[str, Repo] = {}
        self.tokens = {TOKEN: USER, OTHER_TOKEN: OTHER_USER}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        self._failures: list[list] = []
        self._lock = threading.Lock()
        self._thread = None

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @classmethod
    def start(cls) -> "FakeHub":
        hub = cls()
        hub._thread = threading.Thread(target=hub.serve_forever, name="fake-hub", daemon=True)
        hub._thread.start()
        return hub

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def fail(self, method: str, path_pattern: str, status: int, message: str, times: int = 1) -> None:
        """The next `times` requests whose method is `method` and whose path matches `path_pattern` (a regex,
        searched) get `status` with `{"error": message}` instead of being served."""
        with self._lock:
            self._failures.append([method.upper(), re.compile(path_pattern), status, message, times])

    def take_failure(self, method: str, path: str):
        with self._lock:
            for failure in self._failures:
                if failure[0] == method and failure[1].search(path) and failure[4] > 0:
                    failure[4] -= 1
                    return failure[2], failure[3]
        return None

    def commit(self, repo: Repo, message: str, files: dict[str, bytes]) -> str:
        parent = repo.commits[-1][0] if repo.commits else ""
        oid = hashlib.sha1(f"{parent}\n{message}\n{sorted(files)}\n{len(repo.commits)}".encode()).hexdigest()
        repo.commits.append((oid, message, files))
        return oid


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    # ---- plumbing ----------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)
        self.server.requests.append((self.command, self.path, status))

    def _json(self, status: int, payload, headers: dict | None = None):
        headers = {"Content-Type": "application/json", **(headers or {})}
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None, head: bool = False):
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return self.server.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None

    def _visible_repo(self, repo_id: str, head: bool = False) -> Repo | None:
        repo = self.server.repos.get(repo_id)
        if repo is None or (repo.private and self._user() != repo_id.split("/")[0]):
            self._error(404, f"Repository not found: {repo_id}", "RepoNotFound", head=head)
            return None
        return repo

    def _dispatch(self, routes):
        path = urlsplit(self.path).path
        failure = self.server.take_failure(self.command, path)
        if failure is not None:
            self._body()
            self._error(failure[0], failure[1], head=self.command == "HEAD")
            return
        for pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                try:
                    handler(*[None if group is None else unquote(group) for group in match.groups()])
                except Exception as error:  # a bug here must show up as an HTTP error, not a dropped connection
                    self._error(500, f"fake hub: {type(error).__name__}: {error}", head=self.command == "HEAD")
                return
        self._error(404, f"fake hub: no route for {self.command} {path}", head=self.command == "HEAD")

    # ---- verbs -------------------------------------------------------------------------------------------------
    def do_POST(self):
        self._dispatch(
            [
                (r"/api/repos/create", self._create_repo),
                (r"/api/validate-yaml", self._validate_yaml),
                (r"/api/models/([^/]+/[^/]+)/preupload/(.+)", self._preupload),
                (r"/api/models/([^/]+/[^/]+)/commit/(.+)", self._commit),
            ]
        )

    def do_GET(self):
        self._dispatch(self._read_routes())

    def do_HEAD(self):
        self._dispatch(self._read_routes())

    def _read_routes(self):
        return [
            (r"/api/whoami-v2", self._whoami),
            (r"/api/models/([^/]+/[^/]+)", lambda repo_id: self._model_info(repo_id, "main")),
            (r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", self._model_info),
            (r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", self._tree),
            (r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self._resolve),
        ]

    # ---- write routes ------------------------------------------------------------------------------------------
    def _create_repo(self):
        payload = json.loads(self._body() or b"{}")
        user = self._user()
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return
        namespace = payload.get("organization") or user
        if namespace != user:
            self._error(403, f'You don\'t have the rights to create a model under the namespace "{namespace}"')
            return
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.server.endpoint}/{repo_id}"
        if repo_id in self.server.repos:
            self._json(409, {"error": "You already created this model repo", "url": url})
            return
        repo = Repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        self.server.commit(repo, "initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs\n"})
        self.server.repos[repo_id] = repo
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self):
        content = json.loads(self._body())["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        errors = []
        if match is None:
            errors.append({"message": "README.md has no YAML metadata block"})
        else:
            try:
                metadata = yaml.safe_load(match.group(1))
            except yaml.YAMLError as error:
                metadata, errors = None, [{"message": f"invalid YAML: {error}"}]
            if not errors and not isinstance(metadata, dict):
                errors.append({"message": "the metadata must be a YAML mapping"})
        self._json(400 if errors else 200, {"errors": errors, "warnings": []})

    def _writable_repo(self, repo_id: str) -> Repo | None:
        user = self._user()
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return None
        repo = self._visible_repo(repo_id)
        if repo is not None and repo_id.split("/")[0] != user:
            self._error(403, f"You don't have write access to {repo_id}")
            return None
        return repo

    def _preupload(self, repo_id: str, revision: str):
        payload = json.loads(self._body())
        repo = self._writable_repo(repo_id)
        if repo is None:
            return
        current = repo.head[2]
        files = [
            {
                "path": item["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha(current[item["path"]]) if item["path"] in current else None,
            }
            for item in payload["files"]
        ]
        self._json(200, {"files": files, "commitOid": repo.head[0]})

    def _commit(self, repo_id: str, revision: str):
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        repo = self._writable_repo(repo_id)
        if repo is None:
            return
        if unquote(revision) != "main":
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return
        files = dict(repo.head[2])
        message = ""
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "header":
                message = value.get("summary", "")
            elif key == "file":
                data = value["content"]
                files[value["path"]] = base64.b64decode(data) if value.get("encoding") == "base64" else data.encode()
            elif key in ("deletedFile", "deletedFolder"):
                prefix = value["path"].rstrip("/")
                files = {p: d for p, d in files.items() if p != prefix and not p.startswith(prefix + "/")}
            else:
                self._error(400, f"fake hub: unsupported commit operation {key!r}")
                return
        oid = self.server.commit(repo, message, files)
        url = f"{self.server.endpoint}/{repo_id}/commit/{oid}"
        self._json(200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None})

    # ---- read routes -------------------------------------------------------------------------------------------
    def _whoami(self):
        user = self._user()
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
        else:
            self._json(200, {"type": "user", "name": user, "auth": {"accessToken": {"role": "write"}}})

    def _snapshot(self, repo_id: str, revision: str, head: bool = False):
        repo = self._visible_repo(repo_id, head=head)
        if repo is None:
            return None
        snapshot = repo.files(unquote(revision))
        if snapshot is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound", head=head)
        return snapshot

    def _model_info(self, repo_id: str, revision: str):
        snapshot = self._snapshot(repo_id, revision)
        if snapshot is None:
            return
        oid, files = snapshot
        card = files.get("README.md", b"").decode("utf-8", "replace")
        match = re.match(r"^---\n(.*?)\n---\n", card, re.S)
        card_data = yaml.safe_load(match.group(1)) if match else None
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": oid,
            "private": self.server.repos[repo_id].private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": (card_data or {}).get("tags", []),
            "library_name": (card_data or {}).get("library_name"),
            "pipeline_tag": (card_data or {}).get("pipeline_tag"),
            "siblings": [{"rfilename": path} for path in sorted(files)],
        }
        if card_data is not None:
            info["cardData"] = card_data
        self._json(200, info)

    def _tree(self, repo_id: str, revision: str, prefix: str | None):
        snapshot = self._snapshot(repo_id, revision)
        if snapshot is None:
            return
        _, files = snapshot
        query = parse_qs(urlsplit(self.path).query)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = (prefix or "").strip("/")
        entries, folders = [], set()
        for path in sorted(files):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1 :] if prefix else path
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    folders.add("/".join(([prefix] if prefix else []) + parts[:depth]))
            if recursive or len(parts) == 1:
                data = files[path]
                entries.append({"type": "file", "path": path, "size": len(data), "oid": git_blob_sha(data)})
        if prefix and not entries and not folders:
            self._error(404, f"{prefix} does not exist on main", "EntryNotFound")
            return
        folder_entries = [{"type": "directory", "path": path, "oid": "0" * 40, "size": 0} for path in sorted(folders)]
        self._json(200, folder_entries + entries)

    def _resolve(self, repo_id: str, revision: str, path: str):
        head = self.command == "HEAD"
        snapshot = self._snapshot(repo_id, revision, head=head)
        if snapshot is None:
            return
        oid, files = snapshot
        if path not in files:
            self._error(404, f"Entry not found: {path}", "EntryNotFound", head=head)
            return
        data = files[path]
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{git_blob_sha(data)}"',
            "X-Repo-Commit": oid,
            "Content-Length": str(len(data)),
        }
        self._send(200, data, headers, head=head)


if __name__ == "__main__":
    hub = FakeHub(("127.0.0.1", 0))
    print(f"fake hub at {hub.endpoint}  (HF_ENDPOINT={hub.endpoint} HF_TOKEN={TOKEN})", flush=True)
    try:
        hub.serve_forever()
    except KeyboardInterrupt:
        pass
