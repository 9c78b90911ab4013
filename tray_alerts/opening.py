"""Opening a file or a web page with the desktop's opener (xdg-open, open, or the Windows shell)."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


def web_url(value: object) -> str | None:
    """`value` if it is an http(s) URL with a host (the only kind an alert's context may open), else None."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def open_target(target: Path | str) -> bool:
    """Open a file or URL with the platform's opener, detached; False (and a log line) when there is none."""
    if sys.platform == "win32":
        os.startfile(target)  # type: ignore[attr-defined]
        return True
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        log.warning("cannot open %s: %s is not installed", target, opener)
        return False
    subprocess.Popen([opener, str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    return True
