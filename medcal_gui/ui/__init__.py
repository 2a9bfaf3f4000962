"""The desktop GUI (PySide6). The only package that imports Qt: it arranges, starts and shows; the core
(`medcal_gui.dataset`, `medcal_gui.engine`) computes."""
