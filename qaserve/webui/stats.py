"""The web console's reading of the server's `/metrics` (Prometheus text): the qa_* figures.

python -c "import httpx; from qaserve.webui.stats import parse_metrics; \
print(parse_metrics(httpx.get('http://127.0.0.1:8000/metrics').text))"

Parsed with prometheus_client's own parser; two snapshots give rates between refreshes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# unlabelled counters, in the order shown, with what they count
TOTALS = {
    "qa_items": "questions answered",
    "qa_empty_answers": "empty answers",
    "qa_failed_items": "items the engine failed",
    "qa_deadline_cut_items": "answers cut by the deadline",
    "qa_aborted_items": "aborted (client left)",
    "qa_truncated_prompts": "prompts cut to fit",
    "qa_prompt_tokens": "prompt tokens",
    "qa_answer_tokens": "answer tokens",
    "qa_prompt_chars": "question characters",
    "qa_answer_chars": "answer characters",
}
FIGURE_HEADERS = ["figure", "value", "change", "per s"]
REQUEST_HEADERS = ["endpoint", "status", "requests", "mean s"]


@dataclass
class MetricsSnapshot:
    """The qa_* figures of one scrape."""

    totals: dict[str, float] = field(default_factory=dict)
    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    latency: dict[str, tuple[float, float]] = field(default_factory=dict)  # endpoint: count, sum
    batches: tuple[float, float] = (0.0, 0.0)  # /predict requests, items in them
    taken: float = field(default_factory=time.monotonic)


def parse_metrics(text: str) -> MetricsSnapshot:
    """The qa_* families of a Prometheus text scrape (other families are ignored)."""
    from prometheus_client.parser import text_string_to_metric_families

    snap = MetricsSnapshot()
    latency: dict[str, list[float]] = {}
    batch = [0.0, 0.0]
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("qa_"):
            continue
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if family.name == "qa_requests" and name == "qa_requests_total":
                key = (labels.get("endpoint", "?"), labels.get("status", "?"))
                snap.requests[key] = value
            elif family.name == "qa_request_seconds" and name.endswith(("_count", "_sum")):
                pair = latency.setdefault(labels.get("endpoint", "?"), [0.0, 0.0])
                pair[name.endswith("_sum")] = value
            elif family.name == "qa_batch_items" and name.endswith(("_count", "_sum")):
                batch[name.endswith("_sum")] = value
            elif name == family.name + "_total" and not labels:  # any other plain counter
                snap.totals[family.name] = value
    snap.latency = {k: (v[0], v[1]) for k, v in latency.items()}
    snap.batches = (batch[0], batch[1])
    return snap


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def figure_rows(snap: MetricsSnapshot, previous: MetricsSnapshot | None = None) -> list[list[str]]:
    """[figure, value, change since `previous`, change per second] rows for the Server tab."""
    seconds = snap.taken - previous.taken if previous is not None else 0.0
    count, items = snap.batches
    names = list(TOTALS) + sorted(set(snap.totals) - set(TOTALS))  # newer counters by name
    figures: list[tuple[str, float, float | None]] = [
        (TOTALS.get(name, name), snap.totals.get(name, 0.0), _prev_total(previous, name))
        for name in names
    ]
    figures.append(
        ("/predict requests", count, previous.batches[0] if previous is not None else None)
    )
    rows = [_row(label, value, before, seconds) for label, value, before in figures]
    rows.append(["mean questions per /predict", f"{items / count:,.1f}" if count else "–", "", ""])
    return rows


def _prev_total(previous: MetricsSnapshot | None, name: str) -> float | None:
    return None if previous is None else previous.totals.get(name, 0.0)


def _row(label: str, value: float, before: float | None, seconds: float) -> list[str]:
    if before is None:
        return [label, _num(value), "", ""]
    delta = value - before
    rate = f"{delta / seconds:,.1f}" if seconds > 0 else ""
    return [label, _num(value), f"+{_num(delta)}" if delta >= 0 else _num(delta), rate]


def request_rows(snap: MetricsSnapshot) -> list[list[str]]:
    """[endpoint, status, requests, mean latency] per endpoint and status, busiest first."""
    rows = []
    for (endpoint, status), value in sorted(snap.requests.items(), key=lambda kv: -kv[1]):
        count, total = snap.latency.get(endpoint, (0.0, 0.0))
        mean = f"{total / count:.3f}" if count else "–"
        rows.append([endpoint, status, _num(value), mean])
    return rows
