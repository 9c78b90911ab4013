"""Where tray-alerts keeps its files by default, per the platform's conventions."""
from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "tray-alerts"
PACKAGED_SETTINGS = Path(__file__).with_name("default_settings.ini")
TOKEN_FILE = "api-token"  # in the state folder: the push API's bearer token


def user_config_file() -> Path:
    """The user's own settings.ini."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.ini"


def default_state_dir() -> Path:
    """The folder for state.db."""
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def default_state_path() -> Path:
    """The SQLite state file."""
    return default_state_dir() / "state.db"


def default_log_file() -> Path:
    """The rotating log file."""
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)) / "tray-alerts.log"
