"""The log_pattern monitor on real files: it starts at the end, fires on a matching line, follows rotation by
rename and by truncation like `tail -F`, and recovers on `clear_pattern` or after `clear_after` of quiet on a
fake clock (no sleeps)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import RecordingChannel
from tray_alerts import Engine, Level
from tray_alerts.channels.base import SettingError
from tray_alerts.clock import FakeClock
from tray_alerts.monitors import MonitorSpec, build_monitor
from tray_alerts.monitors.log_pattern import MAX_LINE, LogFollower
from tray_alerts.monitors.runner import MonitorRunner


def write(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def build(path: Path, **raw: str):
    monitor = build_monitor("t", "log_pattern", {"path": str(path), "pattern": "ERROR|Traceback", **raw}).monitor
    monitor.clock = FakeClock()
    return monitor


# ---- the follower --------------------------------------------------------------------------------------------


def test_the_first_read_starts_at_the_end(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("old one\nold two\n")
    follower = LogFollower(str(log))
    assert follower.read() == []
    write(log, "new one\nnew two\n")
    assert follower.read() == ["new one", "new two"]
    assert follower.read() == []


def test_a_partial_line_waits_for_its_newline(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.read()
    write(log, "half a li")
    assert follower.read() == []
    write(log, "ne\r\nnext\n")
    assert follower.read() == ["half a line", "next"]


def test_rotation_by_rename_reads_the_old_file_to_its_end_then_the_new_one(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("before\n")
    follower = LogFollower(str(log))
    follower.read()
    write(log, "last line of the old file\nno newline at the end")
    os.rename(log, tmp_path / "app.log.1")
    write(tmp_path / "app.log.1", "\n")   # a writer still holding the old file: its end belongs to it
    log.write_text("first line of the new file\n")
    assert follower.read() == ["last line of the old file", "no newline at the end",
                               "first line of the new file"]
    write(log, "more\n")
    assert follower.read() == ["more"]


def test_rotation_with_a_gap_before_the_new_file(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.read()
    os.rename(log, tmp_path / "app.log.1")
    assert follower.read() == [] and not follower.present
    log.write_text("new file, read from its start\n")
    assert follower.read() == ["new file, read from its start"]


def test_a_file_truncated_and_grown_past_the_old_size_is_read_from_the_start(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("short\n")
    follower = LogFollower(str(log))
    follower.read()
    with open(log, "r+") as handle:
        handle.truncate(0)
    write(log, "rewritten, and longer than before\n")
    assert follower.read() == ["rewritten, and longer than before"]


def test_truncation_reads_again_from_the_start(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("a fairly long line that was there before\n")
    follower = LogFollower(str(log))
    follower.read()
    with open(log, "r+") as handle:   # copytruncate
        handle.truncate(0)
    write(log, "after\n")
    assert follower.read() == ["after"]


def test_a_missing_file_is_read_from_its_start_once_it_appears(tmp_path):
    log = tmp_path / "later.log"
    follower = LogFollower(str(log))
    assert follower.read() == [] and not follower.present
    log.write_text("one\ntwo\n")
    assert follower.read() == ["one", "two"]


def test_an_endless_line_is_cut_into_lines(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.read()
    write(log, "x" * (3 * MAX_LINE) + "\n")
    lines = follower.read()
    assert len(lines) > 1
    assert "".join(lines) == "x" * (3 * MAX_LINE) and all(len(line) <= 2 * MAX_LINE for line in lines)


def test_undecodable_bytes_do_not_stop_it(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.read()
    with open(log, "ab") as handle:
        handle.write(b"caf\xe9 ERROR\n")
    assert follower.read() == ["caf\ufffd ERROR"]


# ---- the monitor ---------------------------------------------------------------------------------------------


def test_old_lines_never_fire_and_a_new_match_does_with_the_line(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("ERROR from yesterday\n")
    monitor = build(log)
    assert monitor.label == f"log {log}"
    reading = monitor.check()
    assert (reading.level, reading.summary) == (None, "no matching line")
    write(log, "INFO fine\nERROR disk quota exceeded\nINFO fine again\n")
    reading = monitor.check()
    assert (reading.level, reading.summary) == (Level.ERROR, "matched: ERROR disk quota exceeded")
    assert reading.context == {"path": str(log), "line": "ERROR disk quota exceeded", "matches": 1}


def test_without_clear_rules_the_next_quiet_check_recovers(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    monitor = build(log, level="warning")
    monitor.check()
    write(log, "Traceback (most recent call last):\n")
    assert monitor.check().level is Level.WARNING
    reading = monitor.check()
    assert (reading.level, reading.summary) == (None, "no new matching line")
    assert monitor.check().summary == "no matching line"


def test_clear_after_needs_that_long_without_a_match(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    monitor = build(log, clear_after="10m")
    monitor.check()
    write(log, "ERROR one\n")
    assert monitor.check().summary == "matched: ERROR one"
    monitor.clock.advance(9 * 60)
    assert monitor.check().level is Level.ERROR   # still within clear_after: held
    write(log, "ERROR two\n")
    reading = monitor.check()
    assert (reading.summary, reading.value, reading.context["matches"]) == ("matched: ERROR two", 2, 2)
    monitor.clock.advance(9 * 60)
    assert monitor.check().level is Level.ERROR   # the quiet time restarted at the second match
    monitor.clock.advance(60)
    reading = monitor.check()
    assert (reading.level, reading.summary) == (None, "no match for 10 min")


def test_clear_pattern_recovers_and_only_while_firing(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    monitor = build(log, pattern="link down", clear_pattern="link up")
    monitor.check()
    write(log, "eth0: link up\n")
    assert monitor.check().summary == "no matching line"   # nothing to clear
    write(log, "eth0: link down\n")
    assert monitor.check().level is Level.ERROR
    monitor.clock.advance(86400)
    assert monitor.check().level is Level.ERROR   # no clear_after: stays until the clear line
    write(log, "eth0: link up\n")
    reading = monitor.check()
    assert (reading.level, reading.summary) == (None, "cleared: eth0: link up")
    assert reading.context == {"path": str(log), "line": "eth0: link up"}


def test_within_one_check_the_last_line_decides(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    monitor = build(log, pattern="down", clear_pattern="up")
    monitor.check()
    write(log, "down\nup\n")
    assert monitor.check().summary == "cleared: up"
    write(log, "up\ndown\n")
    assert monitor.check().summary == "matched: down"


def test_a_match_in_the_rotated_files_last_lines_and_in_the_new_file(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    monitor = build(log)
    monitor.check()
    write(log, "ERROR just before rotation\n")
    os.rename(log, tmp_path / "app.log.1")
    log.write_text("INFO new file\n")
    assert monitor.check().summary == "matched: ERROR just before rotation"
    with open(log, "r+") as handle:
        handle.truncate(0)
    write(log, "ERROR after truncation, longer than what was there\n")   # the size alone cannot tell
    assert monitor.check().summary == "matched: ERROR after truncation, longer than what was there"


def test_a_missing_file_is_waited_for(tmp_path):
    log = tmp_path / "not-yet.log"
    monitor = build(log)
    reading = monitor.check()
    assert (reading.level, reading.summary) == (None, "is missing (waiting for it to appear)")
    log.write_text("ERROR in the first line of a new file\n")
    assert monitor.check().summary == "matched: ERROR in the first line of a new file"


def test_an_unreadable_file_is_an_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    log = tmp_path / "secret.log"
    log.write_text("")
    log.chmod(0)
    reading = build(log).check()
    assert (reading.level, reading.summary) == (Level.ERROR, "cannot read (Permission denied)")


def test_through_the_runner_a_match_fires_and_quiet_recovers(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    monitor = build(log, clear_after="5m")
    channel = RecordingChannel("rec")
    with Engine({"rec": channel}, {level: ["rec"] for level in Level}, tmp_path / "state.db") as engine:
        runner = MonitorRunner(engine, [MonitorSpec(monitor, interval=3600, timeout=5)])
        runner.run_once("t")
        write(log, "ERROR out of memory\n")
        runner.run_once("t")
        monitor.clock.advance(300)
        runner.run_once("t")
    assert channel.kinds() == ["fired:error", "resolved:error"]
    assert channel.sent[0].message == f"log {log} matched: ERROR out of memory"
    assert channel.sent[0].context == {"path": str(log), "line": "ERROR out of memory", "matches": 1}
    assert channel.sent[1].message == f"log {log} no match for 5 min"


@pytest.mark.parametrize("raw, key", [
    ({"pattern": "x"}, "path"),
    ({"path": "/tmp/x"}, "pattern"),
    ({"path": "/tmp/x", "pattern": "([unclosed"}, "pattern"),
    ({"path": "/tmp/x", "pattern": "x", "clear_pattern": "(("}, "clear_pattern"),
    ({"path": "/tmp/x", "pattern": "x", "clear_after": "soon"}, "clear_after"),
    ({"path": "/tmp/x", "pattern": "x", "level": "meh"}, "level"),
])
def test_settings_errors_name_the_key(raw, key):
    with pytest.raises(SettingError) as caught:
        build_monitor("t", "log_pattern", raw)
    assert caught.value.key == key


def test_the_path_expands_the_home_directory():
    monitor = build_monitor("t", "log_pattern", {"path": "~/x.log", "pattern": "x"}).monitor
    assert monitor.path == os.path.expanduser("~/x.log")


def test_a_path_that_is_not_a_file_is_an_error(tmp_path):
    reading = build(tmp_path).check()
    assert (reading.level, reading.summary) == (Level.ERROR, "cannot read (Is a directory)")
