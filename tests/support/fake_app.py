"""A stand-in for `serve:app` in tests/server/test_process.py (no engine): a plain ASGI app
whose process starts a child, as uvicorn's vLLM server starts EngineCore, in its process group.

    FAKE_APP_MODE=stubborn python -m uvicorn tests.support.fake_app:app --port 8011

FAKE_APP_MODE: ok; stubborn (the child ignores SIGTERM); crash (exits at import);
never_ready (`GET /` answers 503).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

MODE = os.environ.get("FAKE_APP_MODE", "ok")
if MODE == "crash":
    raise SystemExit("fake app: crashing at import as asked")
IGNORE = (
    "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " if MODE == "stubborn" else ""
)
CHILD = subprocess.Popen([sys.executable, "-c", IGNORE + "import time; time.sleep(600)"])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                CHILD.terminate()
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        status = 503 if MODE == "never_ready" else 200
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"status": "batch"}'})
