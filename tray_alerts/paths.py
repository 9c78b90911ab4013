"""Where tray-alerts keeps its files by default, per the platform's conventions, and its private folders."""
from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "tray-alerts"
PACKAGED_SETTINGS = Path(__file__).with_name("default_settings.ini")
TOKEN_FILE = "api-token"  # in the state folder: the push API's bearer token
METRICS_TOKEN_FILE = "metrics-token"  # in the state folder: what a Prometheus scraping GET /metrics sends
PRIVATE = 0o700  # every folder tray-alerts creates (state, config, log): its owner's only, whatever the umask


class FolderError(Exception):
    """A folder tray-alerts needs cannot be used (a file, read-only, cannot be created): one line, exit 2."""


def user_config_file() -> Path:
    """The user's own settings.ini."""
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.ini"


def default_state_dir() -> Path:
    """The folder for state.db."""
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def default_state_path() -> Path:
    """The SQLite state file."""
    return default_state_dir() / "state.db"


def default_log_file() -> Path:
    """The rotating log file."""
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)) / "tray-alerts.log"


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot hold tray-alerts' files (`a file, not a folder`, `not writable`, `cannot be created:
    … is not a folder`), or None when it can (it exists and is writable, or the nearest existing one above it is)."""
    if folder.is_dir():
        return None if os.access(folder, os.W_OK | os.X_OK) else "not writable"
    if folder.exists() or folder.is_symlink():
        return "a file, not a folder" if folder.exists() else "a broken link"
    above = folder.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"cannot be created: {above} is not a folder"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"cannot be created: {above} is not writable"
    return None


def check_folder(folder: Path, what: str, setting: str | None = None) -> None:
    """FolderError naming the folder, what is wrong and the [alerts] setting that chooses it, if it cannot be used."""
    problem = folder_problem(folder)
    if problem:
        raise FolderError(f"{what} {folder}: {problem}{_hint(setting)}")


def _hint(setting: str | None) -> str:
    return f" (set [alerts] {setting})" if setting else ""


def private_folder(folder: Path, what: str = "folder", setting: str | None = None) -> Path:
    """The folder, created with every missing parent as 0700 whatever the umask; FolderError if it cannot be."""
    if folder.is_dir():
        return folder
    missing = []
    for path in (folder, *folder.parents):
        if path.exists() or path.is_symlink():
            break
        missing.append(path)
    try:
        for path in reversed(missing):
            try:
                path.mkdir(mode=PRIVATE)
            except FileExistsError:  # made meanwhile by another process
                if not path.is_dir():
                    raise
                continue
            if os.name == "posix":
                os.chmod(path, PRIVATE)
        if not folder.is_dir():
            raise NotADirectoryError(folder)
    except OSError:
        check_folder(folder, what, setting)
        raise FolderError(f"{what} {folder}: cannot be created{_hint(setting)}") from None
    return folder
