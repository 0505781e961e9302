"""A loopback fake of the ModelScope hub: the subset of `/api/v1` the real SDK calls.

    hub = FakeHub(blob_dir, token="good"); hub.add_model("me/tiny", model_dir); hub.start()
    MODELSCOPE_ENDPOINT=hub.url python download_model.py --model_name me/tiny

Download: file list, file content (with Range). Upload: create repo, LFS batch, blob PUT,
commit. That is all modelscope 1.40.2 calls when the endpoint and revision are given (no repo
probe, no revision lookup); anything else is a 404 recorded in `hub.unserved`. Auth as the
SDK sends it (`Authorization: Bearer` and the `m_session_id` cookie): a wrong token is 401, a
private repo without a token is 401, an unknown repo or revision 404. Every request is
recorded in `hub.requests`.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


@dataclass
class Repo:
    private: bool = False
    revisions: dict[str, dict[str, Path]] = field(default_factory=dict)


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"Code": 200, "Data": data, "Message": "success", "Success": True})


def _fail(status: int, message: str, code: int | None = None) -> JSONResponse:
    body = {"Code": code or status, "Message": message, "Success": False}
    return JSONResponse(body, status_code=status)


_SHA256: dict[Path, str] = {}


def _sha256(path: Path) -> str:
    if path not in _SHA256:  # hub files never change once served
        _SHA256[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _SHA256[path]


class FakeHub:
    """Serves models from local directories; stores uploads under `blob_dir`."""

    def __init__(self, blob_dir: Path, token: str | None = None) -> None:
        self.token = token
        self.blob_dir = blob_dir
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path?query)
        self.commits: list[dict[str, Any]] = []
        self.unserved: list[str] = []  # paths the SDK asked for that this fake does not serve
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = self._build_app()

    # --- content -------------------------------------------------------------------------
    def add_model(
        self, repo_id: str, src: Path, revision: str = "master", private: bool = False
    ) -> None:
        repo = self.repos.setdefault(repo_id, Repo(private=private))
        files = {p.relative_to(src).as_posix(): p for p in sorted(src.rglob("*")) if p.is_file()}
        repo.revisions[revision] = files

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeHub:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, args=([sock],), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake hub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None

    # --- auth ----------------------------------------------------------------------------
    def _auth(self, request: Request, repo: Repo | None) -> JSONResponse | None:
        """None if allowed, else the error response."""
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ").strip() or request.cookies.get("m_session_id")
        if given and given != self.token:
            return _fail(401, "Invalid access token or session.")
        if repo is not None and repo.private and not given:
            return _fail(401, "Login required for a private repository.")
        return None

    def _repo(self, request: Request, repo_id: str) -> tuple[Repo | None, JSONResponse | None]:
        repo = self.repos.get(repo_id)
        denied = self._auth(request, repo)
        if denied is not None:
            return None, denied
        if repo is None:
            return None, _fail(404, f"Model {repo_id} does not exist.")
        return repo, None

    # --- routes --------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI()
        hub = self

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Any:
            query = f"?{request.url.query}" if request.url.query else ""
            hub.requests.append((request.method, request.url.path + query))
            return await call_next(request)

        @app.get("/api/v1/models/{owner}/{name}/repo/files")
        def list_files(request: Request, owner: str, name: str, Revision: str = "master") -> Any:
            repo, error = hub._repo(request, f"{owner}/{name}")
            if repo is None:
                return error
            files = repo.revisions.get(Revision)
            if files is None:
                return _fail(404, f"Revision {Revision} not found.")
            entries = [
                {
                    "Name": path.rsplit("/", 1)[-1],
                    "Path": path,
                    "Type": "blob",
                    "Size": src.stat().st_size,
                    "Sha256": _sha256(src),
                    "Revision": Revision,
                }
                for path, src in files.items()
            ]
            return _ok({"Files": entries})

        @app.get("/api/v1/models/{owner}/{name}/repo")
        def get_file(
            request: Request, owner: str, name: str, FilePath: str, Revision: str = "master"
        ) -> Any:
            repo, error = hub._repo(request, f"{owner}/{name}")
            if repo is None:
                return error
            src = repo.revisions.get(Revision, {}).get(FilePath)
            if src is None:
                return _fail(404, f"File {FilePath} not found at {Revision}.")
            data = src.read_bytes()
            ranged = request.headers.get("range", "")
            if ranged.startswith("bytes="):
                first, _, last = ranged[6:].partition("-")
                start, end = int(first or 0), int(last) if last else len(data) - 1
                headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
                return Response(data[start : end + 1], status_code=206, headers=headers)
            return Response(data, media_type="application/octet-stream")

        @app.post("/api/v1/models")
        async def create_repo(request: Request) -> Any:
            denied = hub._auth(request, None)
            if denied is not None:
                return denied
            if not request.headers.get("authorization"):
                return _fail(401, "Login required to create a repository.")
            body = await request.json()
            repo_id = f"{body['Path']}/{body['Name']}"
            if repo_id in hub.repos:  # the real hub's "model already exists" business code
                return _fail(400, "Model already exists.", code=10010101001)
            hub.repos[repo_id] = Repo(private=body.get("Visibility") == 1, revisions={})
            return _ok({"Path": body["Path"], "Name": body["Name"]})

        @app.post("/api/v1/repos/models/{owner}/{name}/info/lfs/objects/batch")
        async def lfs_batch(request: Request, owner: str, name: str) -> Any:
            repo, error = hub._repo(request, f"{owner}/{name}")
            if repo is None:
                return error
            objects = []
            for obj in (await request.json())["objects"]:
                entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
                if not (hub.blob_dir / obj["oid"]).is_file():
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs/{obj['oid']}"}}
                objects.append(entry)
            return _ok({"objects": objects})

        @app.put("/lfs/{oid}")
        async def put_blob(request: Request, oid: str) -> Any:
            denied = hub._auth(request, None)
            if denied is not None:
                return denied
            data = await request.body()
            if hashlib.sha256(data).hexdigest() != oid:
                return _fail(400, "Blob content does not match its oid.")
            hub.blob_dir.mkdir(parents=True, exist_ok=True)
            (hub.blob_dir / oid).write_bytes(data)
            return JSONResponse({"Code": 200})

        @app.post("/api/v1/repos/models/{owner}/{name}/commit/{revision}")
        async def commit(request: Request, owner: str, name: str, revision: str) -> Any:
            repo, error = hub._repo(request, f"{owner}/{name}")
            if repo is None:
                return error
            body = await request.json()
            files = dict(repo.revisions.get(revision, {}))
            for action in body["actions"]:
                if action["type"] == "lfs":
                    blob = hub.blob_dir / action["sha256"]
                    if not blob.is_file():
                        return _fail(400, f"LFS object of {action['path']} was never uploaded.")
                else:
                    data = base64.b64decode(action["content"])
                    blob = hub.blob_dir / hashlib.sha256(data).hexdigest()
                    hub.blob_dir.mkdir(parents=True, exist_ok=True)
                    blob.write_bytes(data)
                files[action["path"]] = blob
            repo.revisions[revision] = files
            hub.commits.append(body)
            return _ok({"Revision": revision})

        @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
        def unknown(rest: str) -> Any:
            hub.unserved.append(f"/{rest}")
            return _fail(404, f"fake hub does not serve /{rest}")

        return app
