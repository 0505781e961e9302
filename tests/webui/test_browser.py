"""The web console in a real browser (headless chromium via Playwright) against a real server.

pytest tests/webui/test_browser.py -q        # screenshots land in artifacts/webui-test/

Gradio keeps a connection open, so `networkidle` never comes: each test waits for `load`,
then for the element it needs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from qaserve.defaults import DEFAULT_SYSTEM_PROMPT
from qaserve.evaluation.scoring import cjk_rouge_l, grader_rouge_l
from qaserve.server.process import free_port
from tests.support.console import start_console
from tests.support.fake_grader import serve_fake
from tests.support.harness import Server

pytestmark = pytest.mark.browser
UI_TIMEOUT_MS = 120_000
# every text change of the last answer bubble, recorded in the page while it streams
RECORD_LENGTHS = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const bots = document.querySelectorAll('#chatbot [data-testid="bot"]');
    const last = bots[bots.length - 1];
    if (last) window.__lengths.push(last.innerText.length);
  }).observe(document.querySelector('#chatbot'),
             {subtree: true, childList: true, characterData: true});
}"""
QUESTIONS = [
    "什么是CUDA？",
    "What does __syncthreads() do?",
    "什么是warp？请简要回答。",
    "Explain shared memory tiling.",
]


def open_console(page: Any, console: Server, state: str = "ready") -> None:
    page.goto(console.url + "/", wait_until="load")
    page.locator(f'#banner [data-state="{state}"]').wait_for(timeout=UI_TIMEOUT_MS)


def connect_until_ready(page: Any, url: str) -> None:
    """Connect, and see the banner turn ready for `url`. One CI run on a loaded 2-core machine
    saw a first click leave the banner down for 120 s (not reproduced in isolation or in the
    whole suite): a second click is what a user would do, and the banner each time is kept in
    the failure message."""
    seen = []
    for _ in range(2):
        page.locator("#server-connect").click()
        try:
            page.locator('#banner [data-state="ready"]').wait_for(timeout=UI_TIMEOUT_MS // 2)
            break
        except Exception:  # Playwright's TimeoutError: note the banner, click once more
            seen.append(page.locator("#banner").inner_text())
    banner = page.locator("#banner").inner_text()
    assert url in banner and "ready" in banner.lower(), (seen, banner)
    if seen:
        print(f"connect needed a second click; the banner was: {seen}")


def set_slider(page: Any, name: str, value: float) -> None:
    box = page.locator(f"#ctl-{name} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def ask(page: Any, question: str) -> None:
    page.locator("#chat-input textarea").fill(question)
    page.locator("#chat-input textarea").press("Enter")


def stats_text(page: Any) -> str:
    return str(page.locator("#chat-stats").inner_text())


def wait_finished(page: Any, before: str) -> str:
    """The stats line once it differs from `before` and tells how the answer ended."""
    page.wait_for_function(
        """before => { const t = document.querySelector('#chat-stats').innerText;
                       return t !== before && /finish: |error: |stopped/.test(t); }""",
        arg=before,
        timeout=UI_TIMEOUT_MS,
    )
    return stats_text(page)


def bubbles(page: Any, who: str) -> list[str]:
    return [str(t) for t in page.locator(f'#chatbot [data-testid="{who}"]').all_inner_texts()]


def wait_bubbles(page: Any, users: int, bots: int) -> None:
    """Until the chatbot shows that many turns (it renders a little after the stats line)."""
    page.wait_for_function(
        """([users, bots]) => {
             const n = who => document.querySelectorAll(`#chatbot [data-testid="${who}"]`).length;
             return n("user") === users && n("bot") === bots; }""",
        arg=[users, bots],
        timeout=UI_TIMEOUT_MS,
    )


def settled_answer(page: Any) -> str:
    """The last answer once its rendering stopped changing (the chatbot renders after the
    stats line)."""
    last, same = None, 0
    for _ in range(100):
        text = bubbles(page, "bot")[-1]
        same = same + 1 if text == last else 0
        if same >= 3:
            return text
        last = text
        page.wait_for_timeout(300)
    raise AssertionError(f"the last answer kept changing: {last!r}")


@pytest.mark.engine
def test_chat_streams_multi_turn_regenerate_and_stop(
    page: Any, console: Server, shots: Path
) -> None:
    open_console(page, console)
    assert "tiny-qwen" in page.locator("#banner").inner_text()
    # the controls start at the server's settings (MAX_NEW_TOKENS default 512, greedy)
    assert page.locator("#ctl-max_new_tokens input[type=number]").input_value() == "512"
    assert float(page.locator("#ctl-temperature input[type=number]").input_value()) == 0
    set_slider(page, "max_new_tokens", 60)
    page.evaluate(RECORD_LENGTHS)
    ask(page, "什么是CUDA？")
    stats = wait_finished(page, "")
    assert "finish: length" in stats, stats
    pieces = re.search(r"(\d+) pieces", stats)
    assert pieces is not None and int(pieces.group(1)) <= 60, f"max tokens not applied: {stats}"
    wait_bubbles(page, 1, 1)
    assert settled_answer(page).strip()
    lengths = [n for n in page.evaluate("window.__lengths") if n > 0]
    assert len(set(lengths)) >= 2, f"the answer did not stream: lengths {lengths}"
    page.screenshot(path=str(shots / "chat.png"), full_page=True)

    ask(page, "What is a warp?")  # the second turn carries the first
    wait_finished(page, stats)
    wait_bubbles(page, 2, 2)
    first_answer, stats = settled_answer(page), stats_text(page)
    page.locator("#chat-regenerate").click()
    wait_finished(page, stats)
    wait_bubbles(page, 2, 2)  # regenerate replaces the last answer
    assert settled_answer(page) == first_answer  # greedy: the same answer again

    set_slider(page, "max_new_tokens", 1800)  # long enough to stop in the middle
    page.locator("#chat-clear").click()
    ask(page, "请详细解释shared memory的tiling原理。")
    page.wait_for_function(
        """() => { const b = document.querySelectorAll('#chatbot [data-testid="bot"]');
                   return b.length && b[b.length - 1].innerText.length > 20; }""",
        timeout=UI_TIMEOUT_MS,
    )
    stats = stats_text(page)
    page.locator("#chat-stop").click()
    assert "stopped by the user" in wait_finished(page, stats)
    stopped = settled_answer(page)  # raises if it keeps growing
    page.wait_for_timeout(1500)
    assert bubbles(page, "bot")[-1] == stopped, "the answer kept growing after Stop"


@pytest.mark.engine
def test_system_prompt_is_read_changed_and_reset(
    page: Any, console: Server, qa_server: Server, shots: Path
) -> None:
    new_prompt = "你是一个测试助教。Answer in one short sentence."
    open_console(page, console)
    page.get_by_role("tab", name="System prompt").click()
    box = page.locator("#system-prompt textarea")
    page.wait_for_function(
        "() => document.querySelector('#system-prompt textarea').value.length > 0"
    )
    assert box.input_value() == DEFAULT_SYSTEM_PROMPT
    try:
        box.fill(new_prompt)
        page.locator("#prompt-save").click()
        page.get_by_text("Saved.").wait_for(timeout=UI_TIMEOUT_MS)
        body = httpx.get(qa_server.url + "/system_prompt").json()
        assert body == {"system_prompt": new_prompt, "is_default": False}
        assert "changed from the default" in page.locator("#system-prompt-status").inner_text()
        page.screenshot(path=str(shots / "system_prompt.png"), full_page=True)
        page.locator("#prompt-reset").click()
        page.get_by_text("Reset to the default.").wait_for(timeout=UI_TIMEOUT_MS)
        assert box.input_value() == DEFAULT_SYSTEM_PROMPT
        body = httpx.get(qa_server.url + "/system_prompt").json()
        assert body == {"system_prompt": DEFAULT_SYSTEM_PROMPT, "is_default": True}
    finally:
        httpx.post(qa_server.url + "/system_prompt", json={"reset": True})


@pytest.mark.engine
def test_server_tab_shows_info_and_live_metrics(
    page: Any, console: Server, qa_server: Server, shots: Path
) -> None:
    open_console(page, console)
    page.get_by_role("tab", name="Server").click()
    info = page.locator("#server-info")
    info.get_by_text("vllm 0.32.0").wait_for(timeout=UI_TIMEOUT_MS)
    figures = page.locator("#metrics-figures")
    figures.get_by_text("questions answered").wait_for(timeout=UI_TIMEOUT_MS)
    assert "max_model_len" in page.locator("#server-settings").inner_text()
    answered = re.search(r"questions answered\s+(\d+)", figures.inner_text())
    assert answered is not None
    httpx.post(qa_server.url + "/predict", json={"prompt": QUESTIONS[:3]}, timeout=300)
    # the live refresh (every 5 s) shows the three answers, and +3 since the refresh before
    page.wait_for_function(
        r"""want => { const m = /questions answered\s+(\d+)\s+\+(\d+)/.exec(
                        document.querySelector('#metrics-figures').innerText);
                      return m !== null && m[1] === want && m[2] === "3"; }""",
        arg=str(int(answered.group(1)) + 3),
        timeout=UI_TIMEOUT_MS,
    )
    page.screenshot(path=str(shots / "server.png"), full_page=True)


def _question_set(path: Path, server: Server) -> list[str]:
    """Four questions; the first two get the server's own (greedy) answers as references."""
    answers = httpx.post(server.url + "/predict", json={"prompt": QUESTIONS}, timeout=300).json()
    refs = [*answers["response"][:2], "CUDA kernel 使用 threadIdx 和 blockIdx", "tiling 分块"]
    rows = [{"question": q, "answer": a} for q, a in zip(QUESTIONS, refs, strict=True)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return refs


def _figure(text: str, label: str) -> float:
    match = re.search(re.escape(label) + r"\s*\|?\s*([\d,.]+)", text)
    assert match, f"{label!r} not in {text!r}"
    return float(match.group(1).replace(",", ""))


@pytest.mark.engine
def test_batch_tab_scores_a_question_set(
    page: Any, console: Server, qa_server: Server, shots: Path, tmp_path: Path
) -> None:
    set_path = tmp_path / "small_set.jsonl"
    refs = _question_set(set_path, qa_server)
    open_console(page, console)
    page.get_by_role("tab", name="Batch test").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(set_path))
    page.get_by_text("4 questions, 4 with a reference answer").wait_for(timeout=UI_TIMEOUT_MS)
    page.locator("#batch-run").click()
    summary = page.locator("#batch-summary")
    summary.get_by_text("accuracy (grader RougeL)").wait_for(timeout=UI_TIMEOUT_MS)
    text = summary.inner_text()
    assert "4 (batch mode, 1 POSTs)" in text
    assert _figure(text, "speed (grader, chars/s)") > 0
    page.wait_for_function(  # the table and gallery render a moment after the summary
        """() => document.querySelector('#batch-table [role=grid]')
                     ?.getAttribute('aria-rowcount') === '5'  // the header and 4 questions
                 && document.querySelectorAll('#batch-plots img').length === 2  // 1 set, batch""",
        timeout=UI_TIMEOUT_MS,
    )
    page.screenshot(path=str(shots / "batch.png"), full_page=True)

    with page.expect_download() as download:
        page.locator("#batch-jsonl").click()
    records = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert [r["ref"] for r in records] == refs
    grader = [grader_rouge_l(r["ref"], r["pred_raw"] or "") for r in records]
    cjk = [cjk_rouge_l(r["ref"], r["pred_raw"] or "") for r in records]
    assert _figure(text, "accuracy (grader RougeL)") == pytest.approx(sum(grader) / 4, abs=6e-5)
    assert _figure(text, "CJK-aware RougeL") == pytest.approx(sum(cjk) / 4, abs=6e-5)
    # the first two references are the server's own answers: they score 1 (CJK-aware)
    assert [r["rougeL_f1_cjk"] for r in records[:2]] == [1.0, 1.0]


def test_banner_says_down_and_chat_reports_it(
    page: Any, console_guard: Any, shots: Path, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    con = start_console("console-down", closed, tmp_path, console_guard)
    try:
        open_console(page, con, state="down")
        assert "Server down" in page.locator("#banner").inner_text()
        ask(page, "什么是CUDA？")
        assert wait_finished(page, "").startswith("error: cannot reach")
        assert bubbles(page, "bot") == []  # no empty answer left behind
        page.screenshot(path=str(shots / "banner_down.png"), full_page=True)
        with serve_fake() as fake:  # another server, chosen in the page
            page.locator("#connection").click()
            box = page.locator("#server-url").get_by_role("textbox")
            box.fill(fake.url)
            box.press("Tab")  # the value is committed before Connect sends it
            page.wait_for_function(
                "u => document.querySelector('#server-url textarea, #server-url input')"
                ".value === u",
                arg=fake.url,
                timeout=UI_TIMEOUT_MS,
            )
            connect_until_ready(page, fake.url)
    finally:
        con.stop()


def test_banner_says_not_ready(page: Any, console_guard: Any, shots: Path, tmp_path: Path) -> None:
    with serve_fake() as fake:  # answers 503 on `GET /` as a loading server does
        fake.not_ready = 10**6
        con = start_console("console-loading", fake.url, tmp_path, console_guard)
        try:
            open_console(page, con, state="not ready")
            assert "Server not ready" in page.locator("#banner").inner_text()
            assert "503" in page.locator("#banner").inner_text()
            page.screenshot(path=str(shots / "banner_not_ready.png"), full_page=True)
            fake.not_ready = 0  # the engine is up: the banner follows within a poll or two
            page.locator('#banner [data-state="ready"]').wait_for(timeout=UI_TIMEOUT_MS)
        finally:
            con.stop()


def test_login_page_when_webui_auth_is_set(
    page: Any, console_guard: Any, shots: Path, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    con = start_console("console-auth", closed, tmp_path, console_guard, WEBUI_AUTH="ta:s3cret")
    try:
        page.goto(con.url + "/", wait_until="load")
        page.locator("input[type=password]").wait_for(timeout=UI_TIMEOUT_MS)
        page.screenshot(path=str(shots / "login.png"), full_page=True)
        page.locator("input[type=text]").first.fill("ta")
        page.locator("input[type=password]").fill("s3cret")
        page.locator("input[type=password]").press("Enter")
        page.locator('#banner [data-state="down"]').wait_for(timeout=UI_TIMEOUT_MS)
    finally:
        con.stop()
