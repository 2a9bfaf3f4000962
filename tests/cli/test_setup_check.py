"""`make run`'s check of Qt's xcb plugin: real `ldd` on real shared libraries, one built with a missing
dependency."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medcal_gui.cli import setup_check


@pytest.mark.parametrize(("soname", "package"), [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"), ("libGL.so.1", "libgl1"), ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libdbus-1.so.3", "libdbus-1-3"), ("libxcb-cursor.so.0", "libxcb-cursor0"),
])
def test_debian_package_names(soname: str, package: str) -> None:
    assert setup_check.debian_package(soname) == package


@pytest.fixture
def lib_with_missing_dependency(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the test libraries")
    dep_src, user_src = tmp_path / "dep.c", tmp_path / "user.c"
    dep_src.write_text("int medcal_dep(void) { return 1; }\n")
    user_src.write_text("int medcal_dep(void);\nint medcal_user(void) { return medcal_dep(); }\n")
    dep = tmp_path / "libmedcal-probe.so.4"
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libmedcal-probe.so.4", "-o", str(dep), str(dep_src)],
                   check=True)
    user = tmp_path / "libuser.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(user), str(user_src), str(dep)], check=True)
    dep.unlink()  # now the dynamic linker cannot find it
    return user


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd is Linux's")
def test_missing_library_gives_the_apt_get_line(lib_with_missing_dependency: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert setup_check.missing_libraries([lib_with_missing_dependency]) == ["libmedcal-probe.so.4"]
    code, message = setup_check.check([lib_with_missing_dependency])
    assert code == 1
    assert "sudo apt-get install libmedcal-probe4" in message and "libmedcal-probe.so.4" in message
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # the xcb plugin is not used then
    assert setup_check.check([lib_with_missing_dependency]) == (0, "")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd is Linux's")
def test_the_real_plugin_is_found_and_checked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    qt = setup_check.qt_dir()
    assert qt is not None
    files = setup_check.xcb_libraries(qt)
    assert [f.name for f in files] == ["libqxcb.so", "libQt6XcbQpa.so.6"]
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")
    code, message = setup_check.check(files)
    missing = setup_check.missing_libraries(files)
    assert (code == 0) == (not missing)
    assert all(setup_check.debian_package(m) in message for m in missing)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Linux's")
def test_medcal_gui_without_a_display_says_so_instead_of_aborting(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(MEDCAL_HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "medcal_gui", "gui"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)  # Qt's abort was -6 (SIGABRT)
    qt = setup_check.qt_dir()
    assert qt is not None
    missing = setup_check.missing_libraries(setup_check.xcb_libraries(qt))
    # a machine without the plugin's libraries hears of those first (this one, as set up for CI, lacks two)
    expected = (f"libraries that are not installed ({', '.join(missing)})" if missing
                else "The window cannot open: there is no display (DISPLAY is not set).")
    assert proc.stderr.startswith("medcal gui: error: The window cannot open: ") and expected in proc.stderr
    assert "Traceback" not in proc.stderr and "qt.qpa" not in proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd is Linux's")
def test_medcal_gui_names_the_missing_library_before_qt_loads(lib_with_missing_dependency: Path,
                                                               monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.cli.main import main

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")
    # the plugin's real libraries are all present here: stand a real library with a missing dependency in
    monkeypatch.setattr(setup_check, "xcb_libraries", lambda qt: [lib_with_missing_dependency])
    assert main(["gui"]) == 2
    err = capsys.readouterr().err
    assert "sudo apt-get install libmedcal-probe4" in err and err.startswith("medcal gui: error: ")
