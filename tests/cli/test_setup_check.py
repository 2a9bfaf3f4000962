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
    code, message = setup_check.check(files)
    missing = setup_check.missing_libraries(files)
    assert (code == 0) == (not missing)
    assert all(setup_check.debian_package(m) in message for m in missing)
