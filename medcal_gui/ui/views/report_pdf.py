"""Lay the report's HTML out with Qt (QTextDocument) and write it as a PDF with Qt's own writer (QPdfWriter):
no browser, no network. SVG figures become images through QSvgRenderer. Also renders a page to an image,
for the tests and the docs' screenshot (PySide6-Essentials has no QtPdf to read a PDF back).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QMarginsF, QPointF, QRectF, QSizeF, QUrl
from PySide6.QtGui import QColor, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QTextDocument
from PySide6.QtSvg import QSvgRenderer

from medcal_gui.core.errors import OutputError
from medcal_gui.core.fsutil import atomic_path
from medcal_gui.workflows.handover.report_doc import ReportDoc

DPI = 300
MARGIN_MM = 15.0
MAX_ASPECT = 8.0  # as report_doc.check_svg: a figure taller than this many widths would not fit on pages
MAX_PAGES = 200  # the report is a page or two; more means a figure or a table ran away


def svg_image(svg: str, width_px: int, name: str = "figure") -> QImage:
    r = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    if not r.isValid():
        raise OutputError(f"A figure of the report ({name}) is not valid SVG.")
    size = r.defaultSize()
    # the last guard for what report_doc.check_svg could not size: Qt's own reading of the figure
    if size.width() <= 0 or size.height() <= 0 or not (
            1 / MAX_ASPECT <= size.height() / size.width() <= MAX_ASPECT):
        raise OutputError(f"A figure of the report ({name}) is {size.width()} × {size.height()} px; it must be "
                          f"at most {MAX_ASPECT:g} times taller than wide or wider than tall. Nothing was written.")
    h = max(1, round(width_px * size.height() / size.width()))
    img = QImage(width_px, h, QImage.Format.Format_ARGB32)
    if img.isNull():
        raise OutputError(f"A figure of the report ({name}) could not be drawn ({width_px} × {h} px).")
    img.fill(QColor("white"))
    p = QPainter(img)
    r.render(p)
    p.end()
    return img


def _document(doc: ReportDoc, page: QSizeF) -> QTextDocument:
    td = QTextDocument()
    for name, svg in doc.images.items():
        td.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), svg_image(svg, 1800, name))
    td.setHtml(doc.html)
    td.setPageSize(page)
    return td


def _layout() -> QPageLayout:
    return QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                       QMarginsF(MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM), QPageLayout.Unit.Millimeter)


def write_pdf(doc: ReportDoc, out: Path, *, title: str = "medcal quantization report") -> int:
    """Write `doc` to `out` atomically; returns the page count."""
    with atomic_path(Path(out)) as tmp:
        w = QPdfWriter(str(tmp))
        w.setResolution(DPI)
        w.setPageLayout(_layout())
        w.setTitle(title)
        w.setCreator("medcal")
        rect = w.pageLayout().paintRectPixels(DPI)
        td = _document(doc, QSizeF(rect.width(), rect.height()))
        # print_ paginates in the writer's own device pixels, at this resolution
        td.documentLayout().setPaintDevice(w)
        td.setPageSize(QSizeF(rect.width(), rect.height()))
        pages = td.pageCount()
        if not 1 <= pages <= MAX_PAGES:  # a layout Qt could not paginate: never a PDF of "-10638 page(s)"
            raise OutputError(f"The report laid out as {pages} page(s), which is not a report medcal writes; "
                              f"nothing was written to {out}.")
        td.print_(w)
        del w  # QPdfWriter finishes the file when it is destroyed
    return pages


def render_page(doc: ReportDoc, page: int = 0, width_px: int = 1240) -> QImage:
    """One A4 page of the report as an image, laid out as the PDF is (page 0 first): the image is the paint
    device at the resolution that makes it `width_px` wide, as the PDF writer is at DPI."""
    layout = _layout()
    dpi = round(width_px / (layout.fullRectPoints().width() / 72.0))
    full, paint = layout.fullRectPixels(dpi), layout.paintRectPixels(dpi)
    img = QImage(full.width(), full.height(), QImage.Format.Format_ARGB32)
    img.setDotsPerMeterX(round(dpi / 0.0254))
    img.setDotsPerMeterY(round(dpi / 0.0254))
    img.fill(QColor("white"))
    td = _document(doc, QSizeF(paint.width(), paint.height()))
    td.documentLayout().setPaintDevice(img)
    td.setPageSize(QSizeF(paint.width(), paint.height()))
    if page >= td.pageCount():
        raise OutputError(f"The report has {td.pageCount()} page(s); there is no page {page + 1}.")
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.translate(QPointF(paint.left(), paint.top() - page * paint.height()))
    td.drawContents(p, QRectF(0, page * paint.height(), paint.width(), paint.height()))
    p.end()
    return img


def ensure_gui_app() -> None:
    """Fonts and images need a QGuiApplication; the CLI has none (offscreen when there is no display)."""
    import os

    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.instance() is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        global _APP
        _APP = QGuiApplication([])


_APP: object | None = None
