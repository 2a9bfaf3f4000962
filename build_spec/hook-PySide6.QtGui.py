"""Overrides PyInstaller's hook for PySide6.QtGui (a hook beside the spec wins over the built-in one): the same
collection, minus Qt plugins a desktop workstation never loads. Filtering here, before PyInstaller resolves
the plugins' own dependencies, also keeps those dependencies out:

- platformthemes/libqgtk3: only loads where GTK 3 is installed, yet would bring GTK's stack along (cairo,
  pango, gdk-pixbuf, atk, gio); Qt's own theme is used instead.
- platforms vnc, eglfs, linuxfb, vkkhrdisplay, minimalegl, and the egldeviceintegrations and generic (evdev,
  TUIO) plugins: embedded-device and remote-framebuffer back ends; vnc and TUIO bring QtNetwork and Kerberos.
Kept platforms: xcb (X11), wayland, offscreen (headless) and minimal.
"""

import os

from PyInstaller.utils.hooks.qt import add_qt6_dependencies

_DROP_PLATFORMS = ("libqvnc", "libqeglfs", "libqlinuxfb", "libqvkkhrdisplay", "libqminimalegl",
                   "qvnc", "qeglfs", "qlinuxfb", "qvkkhrdisplay", "qminimalegl")
_DROP_TYPES = ("egldeviceintegrations", "generic")


def _keep(src: str, dst: str) -> bool:
    name = os.path.basename(src)
    kind = os.path.basename(os.path.normpath(dst))
    if kind in _DROP_TYPES:
        return False
    if kind == "platformthemes" and "gtk3" in name:
        return False
    if kind == "platforms" and name.startswith(_DROP_PLATFORMS):
        return False
    return True


hiddenimports, binaries, datas = add_qt6_dependencies(__file__)
binaries = [(src, dst) for src, dst in binaries if _keep(src, dst)]
