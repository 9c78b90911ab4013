"""Start tray-alerts at login: an XDG autostart entry on Linux, a LaunchAgent on macOS, a Startup script on Windows."""
from __future__ import annotations

import os
import sys
from pathlib import Path, PureWindowsPath
from xml.sax.saxutils import escape

APP_ID = "tray-alerts"


def command(config: str | None = None, python: str | None = None) -> list[str]:
    """The command that starts the app, with this Python and the settings file given to it (if any)."""
    args = [python or sys.executable, "-m", "tray_alerts"]
    if config:
        args += ["--config", str(Path(config).expanduser().resolve())]
    return args + ["run"]


def entry_path(platform: str = sys.platform) -> Path:
    """Where the login entry lives on this platform."""
    home = Path.home()
    if platform == "darwin":
        return home / "Library" / "LaunchAgents" / "com.github.tray-alerts.plist"
    if platform == "win32":
        appdata = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming"))
        return appdata / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / "tray-alerts.cmd"
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return config_home / "autostart" / "tray-alerts.desktop"


def entry_text(args: list[str], platform: str = sys.platform) -> str:
    """The file's contents for this platform."""
    if platform == "darwin":
        arguments = "\n".join(f"        <string>{escape(arg)}</string>" for arg in args)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
            '<plist version="1.0">\n<dict>\n'
            "    <key>Label</key>\n    <string>com.github.tray-alerts</string>\n"
            f"    <key>ProgramArguments</key>\n    <array>\n{arguments}\n    </array>\n"
            "    <key>RunAtLoad</key>\n    <true/>\n"
            "</dict>\n</plist>\n")
    if platform == "win32":
        pythonw = str(PureWindowsPath(args[0]).with_name("pythonw.exe"))
        quoted = " ".join(f'"{arg}"' for arg in [pythonw, *args[1:]])
        return f'@echo off\r\nstart "" {quoted}\r\n'
    return ("[Desktop Entry]\nType=Application\nName=tray-alerts\n"
            "Comment=Desktop alerts for your workstation in the system tray\n"
            f"Exec={' '.join(_desktop_quote(arg) for arg in args)}\n"
            "Icon=dialog-warning\nTerminal=false\nX-GNOME-Autostart-enabled=true\nCategories=Utility;Monitor;\n")


def launcher_path() -> Path:
    """Where desktops look for the app's launcher (the pop-ups' desktop-entry hint names it): XDG data home."""
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "applications" / f"{APP_ID}.desktop"


def install_launcher(config: str | None = None) -> Path | None:
    """Write (or bring up to date) the launcher on Linux; the path when written, None when it was current."""
    path = launcher_path()
    text = entry_text(command(config), "linux").replace("X-GNOME-Autostart-enabled=true\n", "")
    if path.exists() and path.read_text() == text:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def enable(config: str | None = None, platform: str = sys.platform) -> Path:
    """Write the login entry; returns its path."""
    path = entry_path(platform)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(entry_text(command(config), platform))
    return path


def disable(platform: str = sys.platform) -> Path | None:
    """Remove the login entry; returns the path removed, or None if there was none."""
    path = entry_path(platform)
    if not path.exists():
        return None
    path.unlink()
    return path


def _desktop_quote(arg: str) -> str:
    """Quote one Exec argument per the Desktop Entry spec (and escape % as %%)."""
    arg = arg.replace("%", "%%")
    if not any(char in arg for char in ' \t"\'\\><~|&;$*?#()`'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$") + '"'

