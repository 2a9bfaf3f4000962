"""Help > User guide: the guide shipped in resources/, rendered from Markdown offline in a QTextBrowser."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from medcal_gui.core.errors import InputError
from medcal_gui.core.resources import resources_dir

GUIDE_NAME = "user_guide.md"
IMAGE_WIDTH = 720  # screenshots are 1280 wide: shown smaller, so the guide needs no sideways scrolling
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def guide_path() -> Path:
    return resources_dir() / GUIDE_NAME


def guide_markdown(path: Path | None = None) -> str:
    """The guide's Markdown; a picture whose file is not there (the bundle ships no screenshots) becomes
    its caption, so the text never shows a broken image."""
    path = path or guide_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"The user guide could not be read ({path}: {exc.strerror or exc}).") from exc

    def image(m: re.Match[str]) -> str:
        target = (path.parent / m.group(2)).resolve()
        return m.group(0) if target.is_file() else f"*(Picture: {m.group(1) or target.name})*"

    return _IMAGE.sub(image, text)


def fit_images(doc: QTextDocument, width: int) -> int:
    """Give every picture in `doc` the display width `width` (the height follows); returns how many."""
    n = 0
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            fmt = frag.charFormat()
            if frag.isValid() and fmt.isImageFormat():
                img = fmt.toImageFormat()
                img.setWidth(width)
                cursor = QTextCursor(doc)
                cursor.setPosition(frag.position())
                cursor.setPosition(frag.position() + frag.length(), QTextCursor.MoveMode.KeepAnchor)
                cursor.setCharFormat(img)
                n += 1
            it += 1
        block = block.next()
    return n


class GuideWindow(QDialog):
    """A non-modal window with the user guide; links to other files open in it, web links are not followed."""

    def __init__(self, parent: QWidget | None = None, path: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("medcal user guide")
        self.path = path or guide_path()
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setSearchPaths([str(self.path.parent)])
        self.browser.document().setBaseUrl(QUrl.fromLocalFile(str(self.path)))
        self.browser.setMarkdown(guide_markdown(self.path))
        fit_images(self.browser.document(), IMAGE_WIDTH)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser)
        lay.addWidget(buttons)
        self.resize(820, 620)
