"""The tuner's search space: which server settings to try, read from a JSON or YAML file.

    python -m qaserve.tuning.space tune_space.json     # check a file, print its parameters

A file holds `params` (tuned, in order) and optionally `env` (variables every trial gets, the
reference included, e.g. MODEL_DIR). Each parameter is a server setting, named by its
variable or field (`MAX_NUM_SEQS` or `max_num_seqs`):

    {"MAX_NUM_SEQS": {"low": 64, "high": 1024, "log": true},
     "GPU_MEMORY_UTILIZATION": {"low": 0.7, "high": 0.95, "step": 0.05},
     "ASYNC_SCHEDULING": [null, true, false],
     "SPEC_NUM_TOKENS": {"low": 2, "high": 6, "when": {"ENABLE_SPECULATIVE_DECODING": true}}}

A list is a set of choices; `null` leaves the variable unset (the server's default). `when`
makes a parameter depend on earlier ones. Values are checked against the settings' types and
ranges when the file is read, not an hour into the night.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from qaserve.paths import REPO_ROOT
from qaserve.predecessor import RENAMED
from qaserve.settings import Settings
from qaserve.settings_doc import env_value

UNTUNABLE = {"host", "port"}  # the tuner picks the port; the server binds to loopback
GRID_LIMIT = 1000  # most values one numeric parameter may expand to for the grid sampler


class SpaceError(ValueError):
    """A search-space file that cannot be used; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    """One tuned setting. `name` is its variable (upper case); `kind` categorical/int/float."""

    name: str
    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0
    high: float = 0
    step: float | None = None
    log: bool = False
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None and self.kind == "float":
            raise SpaceError(f"{self.name}: the grid sampler needs a `step` or a list of values")
        step = self.step or 1
        count = int(round((self.high - self.low) / step)) + 1
        if count > GRID_LIMIT:
            raise SpaceError(f"{self.name}: {count} grid values; give a larger `step` or a list")
        values = [self.low + i * step for i in range(count)]
        return [int(v) if self.kind == "int" else round(v, 10) for v in values]


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    env: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask the trial for each parameter whose `when` holds; the values by variable."""
        chosen: dict[str, Any] = {}
        for param in self.params:
            if all(name in chosen and chosen[name] in ok for name, ok in param.when.items()):
                chosen[param.name] = param.suggest(trial)
        return chosen

    def grid(self) -> dict[str, list[Any]]:
        return {param.name: param.grid_values() for param in self.params}

    def canonical(self) -> dict[str, Any]:
        """A JSON-able form; its hash tells whether a resumed study uses the same space."""
        params = {
            p.name: {
                "kind": p.kind,
                "choices": list(p.choices),
                "low": p.low,
                "high": p.high,
                "step": p.step,
                "log": p.log,
                "when": {k: list(v) for k, v in p.when.items()},
            }
            for p in self.params
        }
        return {"params": params, "env": self.env}

    def digest(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_space(path: Path) -> SearchSpace:
    """Read and check a JSON (or, by suffix, YAML) search-space file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpaceError(f"search space {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise SpaceError(f"search space {path}: {exc}") from None
    return parse_space(data, str(path))


DEFAULT_SPACE = REPO_ROOT / "tune_space.json"
# a flat file is the predecessor's: its budget names meant its routes (README: "Coming from ...")
FLAT_NAMES = {**RENAMED, "MAX_NEW_TOKENS": "short_max_new_tokens"}


def is_flat(data: Any) -> bool:
    """The predecessor's `{"VAR": [values], ...}` file (no `params` object)."""
    return (
        isinstance(data, dict)
        and "params" not in data
        and bool(data)
        and all(isinstance(v, list) for v in data.values())
    )


def merge_flat(data: dict[str, list[Any]], defaults: Path = DEFAULT_SPACE) -> dict[str, Any]:
    """A flat file merged into the default space, as the predecessor merged it into its own:
    its variables replace or extend the defaults' (predecessor names read as ours)."""
    base = json.loads(defaults.read_text(encoding="utf-8"))
    params = dict(base["params"])
    for key, values in data.items():
        name = FLAT_NAMES.get(str(key).upper(), str(key)).upper()
        params[name] = values  # in the default's place (later `when`s may name it)
    return {**base, "params": params}


def parse_space(data: Any, source: str = "<space>") -> SearchSpace:
    if is_flat(data):
        data = merge_flat(data)
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise SpaceError(f"{source}: expected an object with a `params` object")
    unknown = set(data) - {"params", "env", "description", "comment"}
    if unknown:
        raise SpaceError(f"{source}: unknown keys {sorted(unknown)}")
    params: list[Param] = []
    for key, spec in data["params"].items():
        param = _param(variable(key), spec, {p.name for p in params})
        params.append(param)
    if not params:
        raise SpaceError(f"{source}: `params` is empty")
    env = data.get("env") or {}
    if not isinstance(env, dict):
        raise SpaceError(f"{source}: `env` must be an object of variables")
    tuned = {p.name for p in params}
    fixed = {str(k): env_value(v) for k, v in env.items()}
    clash = tuned & set(fixed)
    if clash:
        raise SpaceError(f"{source}: {sorted(clash)} both fixed in `env` and tuned")
    return SearchSpace(tuple(params), {k: v for k, v in fixed.items() if v is not None}, source)


def variable(key: str) -> str:
    """`max_num_seqs` or `MAX_NUM_SEQS` -> `MAX_NUM_SEQS`; anything else is an error."""
    name = str(key).lower()
    info = Settings.model_fields.get(name)
    if info is None:
        raise SpaceError(f"{key}: not a server setting (see README's Configuration table)")
    if name in UNTUNABLE or "SecretStr" in str(info.annotation):
        raise SpaceError(f"{key}: cannot be tuned")
    return name.upper()


def _param(name: str, spec: Any, earlier: set[str]) -> Param:
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise SpaceError(f"{name}: expected a list of choices or an object")
    when = _when(name, spec.get("when") or {}, earlier)
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{name}: `choices` must be a non-empty list")
        for value in choices:
            check_value(name, value)
        return Param(name, "categorical", tuple(choices), when=when)
    try:
        low, high = spec["low"], spec["high"]
    except KeyError:
        raise SpaceError(f"{name}: give `choices`, or `low` and `high`") from None
    numbers = [low, high] + ([spec["step"]] if spec.get("step") is not None else [])
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
        raise SpaceError(f"{name}: `low`, `high` and `step` must be numbers")
    kind = spec.get("type") or ("int" if all(isinstance(v, int) for v in numbers) else "float")
    if kind not in ("int", "float") or not low < high:
        raise SpaceError(f"{name}: need type int or float and low < high")
    if spec.get("log") and spec.get("step") not in (None, 1):
        raise SpaceError(f"{name}: `log` and `step` cannot be combined")
    if spec.get("log") and low <= 0:
        raise SpaceError(f"{name}: `log` needs low > 0")
    for value in (low, high):
        check_value(name, int(value) if kind == "int" else float(value))
    return Param(name, kind, (), low, high, spec.get("step"), bool(spec.get("log")), when)


def _when(name: str, when: Any, earlier: set[str]) -> dict[str, tuple[Any, ...]]:
    if not isinstance(when, dict):
        raise SpaceError(f"{name}: `when` must map earlier parameters to values")
    out = {}
    for key, ok in when.items():
        other = variable(key)
        if other not in earlier:
            raise SpaceError(f"{name}: `when` names {other}, which is not an earlier parameter")
        out[other] = tuple(ok) if isinstance(ok, list) else (ok,)
    return out


def check_value(name: str, value: Any) -> None:
    """Raise SpaceError unless the server's settings accept `value` for `name` (None = unset)."""
    from pydantic import TypeAdapter, ValidationError

    if value is None:
        return
    info = Settings.model_fields[name.lower()]
    kind: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(kind)
    if isinstance(value, str) and "list" in str(info.annotation):
        # a list setting spelled as the environment may (JSON, or the predecessor's commas)
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text.split(",")
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        raise SpaceError(f"{name}={value!r}: {exc.errors()[0]['msg']}") from None


def overrides_env(params: dict[str, Any]) -> dict[str, str | None]:
    """Parameter values as the environment spells them; None: unset the variable."""
    return {name: env_value(value) for name, value in params.items()}


def trial_env(
    base: dict[str, str], fixed: dict[str, str], overrides: dict[str, str | None]
) -> dict[str, str]:
    """A trial server's environment: base, then the space's `env`, then the trial's values."""
    env = {**base, **fixed}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0] if args else "tune_space.json")
    try:
        space = load_space(path)
    except SpaceError as exc:
        print(exc)
        return 2
    for param in space.params:
        when = f" when {param.when}" if param.when else ""
        values = list(param.choices) if param.kind == "categorical" else (param.low, param.high)
        print(f"{param.name:<28} {param.kind:<12} {values}{when}")
    print(
        f"{len(space.params)} parameters; fixed env: {sorted(space.env)}; digest {space.digest()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
