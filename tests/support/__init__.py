"""Helpers shared by the tests; fixtures live in the conftest.py files, which import from here.

- harness: the real server as users start it (`uvicorn serve:app`), the network guard
- servers: `python serve.py` as the grader starts it, in-process uvicorn, /proc figures
- checks: assertions on a real server's answers, errors and /metrics
- fake_engine: FakeEngine, the real app on it in-process, the error-shape checks
- fake_grader: a fake grader-contract server for the client, the evaluator and the console
- fake_hub: a loopback fake ModelScope hub; tools: the model tools run as users run them
- fake_app: a plain ASGI stand-in for `serve:app` (process management, no engine)
- console: the web console as users start it
- tuning: question and space files, a fake trial runner, local webhook and SMTP servers
- load: the load test (also `python -m tests.support.load`)
- figures: the reliability figures (`python -m tests.support.figures`)
"""
