"""The desktop GUI (PySide6). The only package that imports Qt: it arranges, starts and shows; the core
(`medcal_gui.dataset` and the other Qt-free packages) computes."""
