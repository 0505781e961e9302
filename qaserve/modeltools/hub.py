"""Model tools: fetch a model (ModelScope, Hugging Face or a local folder); upload one.

    python download_model.py --model_name Qwen/Qwen2.5-0.5B-Instruct      # into ./model
    python upload_model.py --repo-id me/my-qwen --model-dir model/merged --dry-run

A download first looks for a complete copy under the cache directory and touches no network
when it finds one. Failures are one line naming the cause, with a distinct exit code each.
"""

from __future__ import annotations

import argparse
import errno
import inspect
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from qaserve.logs import configure_logging
from qaserve.modeltools.files import WEIGHT_GLOBS
from qaserve.settings import SettingsError, load_settings

log = logging.getLogger(__name__)
CAUSES = ("error", "usage", "not found", "unauthorized", "no network", "disk full", "not a model")
EXIT_CODES = {cause: code for code, cause in enumerate(CAUSES, start=1)}
SOURCES = ("modelscope", "hf", "local")
DEFAULT_REVISION = {"modelscope": "master", "hf": "main", "local": None}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "*.tiktoken")
_NAMES = {  # exception class names anywhere in the cause chain, across SDK versions
    "unauthorized": {"AuthenticationError", "PermissionDeniedError", "GatedRepoError"},
    "not found": {"NotExistError", "RepositoryNotFoundError", "RevisionNotFoundError"},
    "no network": {"ConnectionError", "ConnectError", "ConnectTimeout", "NetworkError", "Timeout"}
    | {"ReadTimeout", "LocalEntryNotFoundError", "OfflineModeIsEnabled"},
}


class ToolError(Exception):
    """A failure with its cause (`kind`, a key of EXIT_CODES) and a one-line message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.exit_code = EXIT_CODES[kind]


def missing_parts(path: Path, tokenizer: bool = True) -> list[str]:
    """What a loadable model directory lacks: config.json, tokenizer, weights or shards."""
    missing = []
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        missing.append("config.json")
    if tokenizer and not any(next(path.glob(p), None) for p in TOKENIZER_FILES):
        missing.append("tokenizer files")
    if not any(next(path.glob(p), None) for p in WEIGHT_GLOBS):
        missing.append("weights (*.safetensors, *.bin)")
    for index in path.glob("*.index.json"):
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        missing += sorted(f"shard {s}" for s in shards if not (path / s).is_file())
    return missing


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
        todo += list((getattr(item, "failed_files", None) or {}).values())  # per-file failures
    return seen


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(exc, "status_code", None) or getattr(response, "status_code", None)


def classify(exc: BaseException) -> str:
    """The cause of an SDK or OS failure: a key of EXIT_CODES."""
    chain = _chain(exc)
    if any(
        (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT))
        or "No space left on device" in str(e)  # shutil.copytree folds errors into strings
        for e in chain
    ):
        return "disk full"
    for cause in ("unauthorized", "not found"):
        if any(type(e).__name__ in _NAMES[cause] for e in chain):
            return cause
    statuses = {_status(e) for e in chain}
    if statuses & {401, 403}:
        return "unauthorized"
    if 404 in statuses:
        return "not found"
    if any(
        isinstance(e, (ConnectionError, TimeoutError)) or type(e).__name__ in _NAMES["no network"]
        for e in chain
    ):
        return "no network"
    return "error"


def explain(exc: BaseException, what: str, token: str | None) -> ToolError:
    """One line naming the cause; the token is masked even if a library echoed it."""
    kind = classify(exc)
    hint = {
        "not found": "check the id and revision; a private repo needs a token",
        "unauthorized": "check --token / MODELSCOPE_API_TOKEN and your access to the repo",
        "no network": "the hub cannot be reached; run where the network is on",
        "disk full": "free space or point --cache_dir elsewhere",
    }.get(kind, type(exc).__name__)
    detail = (str(exc).strip().splitlines() or [""])[0][:300]
    message = f"{what}: {hint} ({detail})"
    return ToolError(kind, message.replace(token, "***") if token else message)


def _snapshot(source: str, model_id: str, revision: str, cache_dir: Path, **kwargs: Any) -> Path:
    """The SDK's snapshot download: its own cache layout, its own progress bars."""
    if source == "hf":
        from huggingface_hub import snapshot_download as hf_download

        return Path(hf_download(model_id, revision=revision, cache_dir=cache_dir, **kwargs))
    from modelscope import snapshot_download

    token = kwargs.pop("token", None)
    if "token" in inspect.signature(snapshot_download).parameters:
        kwargs["token"] = token
    elif token:  # older modelscope authenticates through a login session
        _hub_api(token)
    return Path(snapshot_download(model_id, revision=revision, cache_dir=str(cache_dir), **kwargs))


def _find_cached(source: str, model_id: str, revision: str, cache_dir: Path) -> Path | None:
    """The SDK's own offline lookup of exactly this revision (no network)."""
    try:
        return _snapshot(source, model_id, revision, cache_dir, local_files_only=True)
    except Exception:  # nothing cached: that is what the network is for
        return None


def _copy_local(src: Path, cache_dir: Path) -> Path:
    """Copy a model folder into the cache (again only when its files changed)."""
    if not src.is_dir():
        raise ToolError("not found", f"{src} is not a directory")
    dest = cache_dir.resolve() / src.resolve().name
    if src.resolve() == dest or cache_dir.resolve() in src.resolve().parents:
        return src.resolve()
    if _listing(dest) != _listing(src):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".*"))
    return dest


def _listing(path: Path) -> dict[str, int]:
    return {p.relative_to(path).as_posix(): p.stat().st_size for p in upload_files_of(path)}


def fetch(
    model_id: str,
    revision: str | None = None,
    *,
    source: str = "modelscope",
    cache_dir: Path,
    token: str | None = None,
    tokenizer: bool = True,
) -> Path:
    """The directory of a complete, loadable copy of `model_id`, downloading only if needed."""
    what = f"{model_id}" + (f"@{revision}" if revision else "") + f" ({source})"
    try:
        if source == "local":
            path = _copy_local(Path(model_id), cache_dir)
        else:
            revision = revision or DEFAULT_REVISION[source]
            assert revision is not None
            cached = _find_cached(source, model_id, revision, cache_dir)
            if cached is not None and not missing_parts(cached, tokenizer):
                log.info("%s is complete in %s: nothing to download", what, cached.resolve())
                return cached.resolve()
            log.info("downloading %s into %s", what, cache_dir)
            path = _snapshot(source, model_id, revision, cache_dir, token=token)
    except ToolError:
        raise
    except Exception as exc:
        log.debug("download of %s failed", what, exc_info=True)
        raise explain(exc, what, token) from None
    missing = missing_parts(path, tokenizer)
    if missing:
        raise ToolError("not a model", f"{path} lacks {', '.join(missing)}")
    return path.resolve()


def upload_files_of(folder: Path) -> list[Path]:
    """Files an upload sends: everything except hidden entries (.git, .ms_upload_cache)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [
        p for p in files if not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def _hub_api(token: str | None) -> Any:
    from modelscope.hub.api import HubApi

    if "token" in inspect.signature(HubApi).parameters:
        return HubApi(token=token)
    api = HubApi()  # older modelscope: no token argument, a login session instead
    if token:
        api.login(token)
    return api


def upload(
    model_dir: Path,
    repo_id: str,
    token: str | None,
    commit_message: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    force: bool = False,
) -> list[tuple[str, int]]:
    """Upload a model folder to a ModelScope repo, creating it if needed; return (file, bytes)."""
    if not model_dir.is_dir():
        raise ToolError("not found", f"{model_dir} is not a directory")
    missing = missing_parts(model_dir, tokenizer=False)
    if missing and not force:
        raise ToolError(
            "not a model", f"{model_dir} lacks {', '.join(missing)} (--force sends it anyway)"
        )
    files = [
        (p.relative_to(model_dir).as_posix(), p.stat().st_size) for p in upload_files_of(model_dir)
    ]
    if dry_run:
        return files
    cache = model_dir / ".ms_upload_cache"  # the SDK's resume record, written into the folder
    had_cache = cache.exists()
    try:
        api = _hub_api(token)
        visibility = "private" if private else "public"
        log.info("creating %s repo %s unless it exists", visibility, repo_id)
        api.create_repo(repo_id, visibility=visibility, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(model_dir),
            commit_message=commit_message,
            repo_type="model",
            ignore_patterns=[".*", "*/.*"],
        )
    except Exception as exc:
        log.debug("upload to %s failed", repo_id, exc_info=True)
        raise explain(exc, f"upload to {repo_id}", token) from None
    if not had_cache:
        cache.unlink(missing_ok=True)
    return files


EXIT_HELP = "exit codes: " + ", ".join(f"{code} {kind}" for kind, code in EXIT_CODES.items())
TOKEN_HELP = "ModelScope token (default: MODELSCOPE_API_TOKEN or MODELSCOPE_TOKEN), never printed"
FLAG = {"action": "store_true"}
DOWNLOAD_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--model_name", "owner/name, or a folder with --source local (default: MODEL_ID)", {}),
    ("--revision", "branch, tag or commit (default: master; main with --source hf)", {}),
    ("--cache_dir", "where models go (default: MODEL_CACHE_DIR, ./model)", {"type": Path}),
    ("--token", TOKEN_HELP + "; with --source hf: a Hugging Face token", {}),
    ("--source", "modelscope (default), hf (honours HF_ENDPOINT), local", {"choices": SOURCES}),
    ("--draft_model_name", "also fetch this draft model (speculative decoding)", {}),
    ("--draft_revision", "revision of the draft (default as for --revision)", {}),
    ("--draft_optional", "a failed draft download warns instead of failing", FLAG),
]
UPLOAD_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--repo-id", "owner/name on ModelScope (default: REPO_ID)", {}),
    ("--model-dir", "folder to upload (default: MODEL_DIR)", {"type": Path}),
    ("--commit-message", "commit message", {"default": "Upload model with qaserve"}),
    ("--token", TOKEN_HELP, {}),
    ("--dry-run", "list the files and sizes that would be sent; send nothing", FLAG),
    ("--private", "create the repo private (default: public, so builds need no token)", FLAG),
    ("--public", "create the repo public", {"action": "store_false", "dest": "private"}),
    ("--force", "send a folder that lacks config.json or weights", FLAG),
]


def _parse(description: str, flags: list[tuple[str, str, dict[str, Any]]], argv: Any) -> Any:
    """Each flag also gets its other spelling (`--model_name` and `--model-name`)."""
    parser = argparse.ArgumentParser(
        description=description, epilog=f"{EXIT_HELP}. Flags beat environment variables."
    )
    for name, help_text, options in flags:
        other = "--" + name[2:].translate(str.maketrans("_-", "-_"))
        parser.add_argument(*dict.fromkeys([name, other]), help=help_text, **options)
    return parser.parse_args(argv)


def _run(tool: str, body: Any) -> int:
    """Settings, logging, then `body(settings)`; a failure is one line on stderr."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        secret = settings.modelscope_api_token
        body(settings, (secret.get_secret_value() or None) if secret else None)
    except SettingsError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        return EXIT_CODES["usage"]
    except ToolError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def download_main(argv: list[str] | None = None) -> int:
    """`download_model.py`: print the model directory (and the draft's on a second line)."""
    args = _parse("Download a model (and a draft); print its directory.", DOWNLOAD_FLAGS, argv)

    def body(settings: Any, env_token: str | None) -> None:
        source = args.source or "modelscope"
        token = args.token or (env_token if source == "modelscope" else None)
        cache_dir = args.cache_dir or settings.model_cache_dir
        opts = {"source": source, "cache_dir": cache_dir, "token": token}
        print(fetch(args.model_name or settings.model_id, args.revision, **opts))
        if not args.draft_model_name:
            return
        try:  # a draft (EAGLE head, small LM) may come without a tokenizer
            print(fetch(args.draft_model_name, args.draft_revision, tokenizer=False, **opts))
        except ToolError as exc:
            if not args.draft_optional:
                raise
            log.warning("draft model skipped (--draft_optional): %s", exc)

    return _run("download_model", body)


def upload_main(argv: list[str] | None = None) -> int:
    """`upload_model.py`: upload a model folder, or list what would be sent."""
    args = _parse("Upload a model folder to a ModelScope repo.", UPLOAD_FLAGS, argv)

    def body(settings: Any, env_token: str | None) -> None:
        model_dir, repo_id = args.model_dir or settings.model_dir, args.repo_id or settings.repo_id
        if model_dir is None or not (repo_id or args.dry_run):
            raise ToolError("usage", "give --model-dir (or MODEL_DIR) and --repo-id (or REPO_ID)")
        opts = {"private": args.private, "dry_run": args.dry_run, "force": args.force}
        token = args.token or env_token
        files = upload(model_dir, repo_id or "", token, args.commit_message, **opts)
        for name, size in files if args.dry_run else []:
            print(f"{size:>15,d}  {name}")
        total = f"{len(files)} files, {sum(size for _, size in files) / 2**20:,.1f} MiB"
        visibility = "private" if args.private else "public"
        done = f"would upload {total} to {repo_id} ({visibility} if created)"
        print(done if args.dry_run else f"uploaded {total} to {repo_id}")

    return _run("upload_model", body)
