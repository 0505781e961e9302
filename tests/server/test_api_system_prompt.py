"""`GET`/`POST /system_prompt`: only local clients or ADMIN_TOKEN holders may change it.

    pytest tests/server/test_api_system_prompt.py -q

Starlette's TestClient reports the client host "testclient" (not local) unless given `client=`.
"""

from __future__ import annotations

import pytest

from qaserve.defaults import DEFAULT_SYSTEM_PROMPT
from tests.support.fake_engine import ClientFactory, assert_error

TOKEN = "tok-Zq81-admin"
NEW_PROMPT = "你是CUDA助教，只回答一句话。"


def test_get_shows_the_default(make_client: ClientFactory) -> None:
    client, _ = make_client()
    r = client.get("/system_prompt")
    assert r.json() == {"system_prompt": DEFAULT_SYSTEM_PROMPT, "is_default": True}


@pytest.mark.parametrize(
    ("admin_token", "headers"),
    [
        (None, {}),
        (TOKEN, {}),
        (TOKEN, {"Authorization": "Bearer wrong"}),
        (TOKEN, {"Authorization": TOKEN}),  # no "Bearer "
        (None, {"Authorization": "Bearer "}),  # no token configured: an empty one is no key
    ],
)
def test_non_local_client_without_the_token_is_403(
    make_client: ClientFactory, admin_token: str | None, headers: dict[str, str]
) -> None:
    client, fake = make_client(admin_token=admin_token)
    r = client.post("/system_prompt", json={"system_prompt": NEW_PROMPT}, headers=headers)
    error = assert_error(r, 403)
    assert error["type"] == "forbidden"
    assert client.get("/system_prompt").json()["system_prompt"] == DEFAULT_SYSTEM_PROMPT


def test_token_holder_changes_it_and_reset_restores(make_client: ClientFactory) -> None:
    client, fake = make_client(admin_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = client.post("/system_prompt", json={"system_prompt": NEW_PROMPT}, headers=auth)
    assert r.status_code == 200
    assert r.json() == {"system_prompt": NEW_PROMPT, "is_default": False}
    assert client.get("/system_prompt").json() == {"system_prompt": NEW_PROMPT, "is_default": False}
    assert client.get("/info").json()["system_prompt"] == NEW_PROMPT

    client.post("/predict", json={"prompt": ["q"]})
    assert NEW_PROMPT in fake.last.prompts[0]
    assert DEFAULT_SYSTEM_PROMPT not in fake.last.prompts[0]

    r = client.post("/system_prompt", json={"reset": True}, headers=auth)
    assert r.json() == {"system_prompt": DEFAULT_SYSTEM_PROMPT, "is_default": True}
    client.post("/predict", json={"prompt": ["q"]})
    assert DEFAULT_SYSTEM_PROMPT in fake.last.prompts[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_local_client_needs_no_token(make_client: ClientFactory, host: str) -> None:
    client, _ = make_client(client=(host, 5000), admin_token=TOKEN)
    r = client.post("/system_prompt", json={"system_prompt": NEW_PROMPT})
    assert r.status_code == 200
    assert client.get("/system_prompt").json()["system_prompt"] == NEW_PROMPT
    r = client.post("/system_prompt", json={"reset": True})
    assert r.json()["is_default"] is True


def test_empty_system_prompt_drops_the_system_turn(make_client: ClientFactory) -> None:
    client, fake = make_client(client=("127.0.0.1", 5000))
    assert client.post("/system_prompt", json={"system_prompt": ""}).status_code == 200
    client.post("/predict", json={"prompt": ["q"]})
    assert "<|im_start|>system" not in fake.last.prompts[0]
    assert fake.last.questions == ["q"]


@pytest.mark.parametrize(
    "body",
    [{}, {"system_prompt": 5}, {"system_prompt": "x", "extra": 1}, {"reset": "maybe"}, []],
    ids=["empty", "number", "extra field", "bad reset", "list"],
)
def test_invalid_update_is_422(make_client: ClientFactory, body: object) -> None:
    client, _ = make_client(client=("127.0.0.1", 5000))
    assert_error(client.post("/system_prompt", json=body), 422)
    assert client.get("/system_prompt").json()["is_default"] is True
