"""README's variable table and env_force.sh are generated from Settings and stay current;
the shell scripts hold no second copy of the defaults."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from qaserve import settings_doc
from qaserve.paths import REPO_ROOT
from qaserve.settings import Settings, load_settings

ROOT = REPO_ROOT


def test_readme_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_doc.readme_with_table(readme) == readme, (
        "run python -m qaserve.settings_doc --write"
    )


def test_env_force_is_current() -> None:
    text = (ROOT / "env_force.sh").read_text(encoding="utf-8")
    assert text == settings_doc.env_force_script(), "run python -m qaserve.settings_doc --write"


def test_every_field_is_documented_in_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"| `{name.upper()}` |" in readme


def _sourced_env(prelude: str, cwd: Path) -> tuple[dict[str, str], str, str]:
    script = (
        f"{prelude}; set -o > before.txt; . {ROOT / 'env_force.sh'}; set -o > after.txt; env -0"
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, cwd=cwd).stdout
    pairs = (item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    env = dict(pairs)
    before = (cwd / "before.txt").read_text()
    after = (cwd / "after.txt").read_text()
    return env, before, after


def test_sourcing_env_force_resets_to_defaults(monkeypatch, tmp_path: Path) -> None:
    env, _, _ = _sourced_env(
        "export MAX_NEW_TOKENS=7 MODEL_DIR=/nowhere ADMIN_TOKEN=secret", tmp_path
    )
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for key, value in env.items():
        if key.lower() in Settings.model_fields:
            monkeypatch.setenv(key, value)
    assert load_settings().shown() == Settings.model_construct().shown()
    assert "MODEL_DIR" not in env and "ADMIN_TOKEN" not in env


def test_sourcing_env_force_leaks_no_shell_options(tmp_path: Path) -> None:
    _, before, after = _sourced_env("set +e +u", tmp_path)
    assert before == after


def test_launch_scripts_hold_no_defaults() -> None:
    names = {name.upper() for name in Settings.model_fields}
    for script in ("run_model.sh", "scripts/setup.sh"):
        text = (ROOT / script).read_text(encoding="utf-8")
        assigned = set(re.findall(r"\b([A-Z_]+)=", text))
        assert not assigned & names, (
            f"{script} sets {assigned & names}: defaults belong in Settings"
        )
