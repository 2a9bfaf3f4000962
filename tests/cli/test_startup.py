"""The command line starts light: building the parser imports none of the heavy libraries, so a short
command (and the quantize child's parent) pays only for what it uses."""

from __future__ import annotations

import re
import subprocess
import sys

HEAVY = ("numpy", "gguf", "PySide6", "llama_cpp", "matplotlib", "torch")


def test_building_the_parser_imports_no_heavy_library() -> None:
    code = ("import sys; from medcal_gui.cli.main import build_parser; build_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""


def test_a_named_command_loads_only_its_own_module() -> None:
    code = ("import sys; from medcal_gui.cli.main import build_parser, _named_command; "
            "_, cmds = build_parser(_named_command(['-v', 'quantize', '--model', 'x.gguf'])); "
            "print(' '.join(sorted(cmds))); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('medcal_gui.cli.commands.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    names, modules = out.stdout.splitlines()
    assert names == "quantize"
    # self_test holds --version's action, which the top-level parser always has
    assert modules.split() == ["medcal_gui.cli.commands.quantize", "medcal_gui.cli.commands.self_test"]


def test_help_answers_for_the_program_and_every_command() -> None:
    """`medcal --help` lists every command (a "%" in a command's summary once made it a traceback), and each
    command's own --help answers with its usage."""
    from medcal_gui.cli.main import COMMAND_MODULES

    top = subprocess.run([sys.executable, "-m", "medcal_gui", "--help"], capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and "Traceback" not in top.stderr, top.stderr[-2000:]
    for name in (m.replace("_", "-") for m in COMMAND_MODULES):
        assert re.search(rf"^ +{name}( |$)", top.stdout, re.M), name
    code = ("import contextlib, io, sys; from medcal_gui.cli.main import main, COMMAND_MODULES\n"
            "for m in COMMAND_MODULES:\n"
            "    buf = io.StringIO()\n"
            "    with contextlib.redirect_stdout(buf):\n"
            "        try:\n"
            "            main([m.replace('_', '-'), '--help'])\n"
            "        except SystemExit as e:\n"
            "            assert e.code == 0, m\n"
            "    assert buf.getvalue().startswith('usage: medcal ' + m.replace('_', '-')), m\n"
            "print('ok')")
    each = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert each.stdout.strip() == "ok", each.stderr[-2000:]


def test_the_command_lines_own_run_skips_the_last_garbage_walk(tiny_model) -> None:  # type: ignore[no-untyped-def]
    """`medcal CMD` (main() with the process's own argv) freezes the heap before the process ends, so the
    interpreter's last collection does not walk numpy's and the app's objects (16 ms of every command); a
    caller's main([...]) (the tests, the bundle's self-test) leaves its heap alone."""
    code = ("import gc, sys\nfrom medcal_gui.cli.main import main\n"
            f"rc = main(['inspect', {str(tiny_model)!r}])\nbefore = gc.get_freeze_count()\n"
            f"sys.argv = ['medcal', 'inspect', {str(tiny_model)!r}]\nrc2 = main()\n"
            "print(rc, before, rc2, gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split()[-4:] == ["0", "0", "0", "True"]
