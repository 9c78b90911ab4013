import logging

from tray_alerts import Alert
from tray_alerts.channels.log import LogChannel


def test_writes_one_line_per_alert_to_its_own_file(tmp_path):
    channel = LogChannel("audit", tmp_path / "sub" / "alerts.log")
    channel.send(Alert("disk_full", "critical", "disk at 95%", {"mount": "/var"}))
    channel.send(Alert("disk_full", "critical", "recovered", resolved=True))
    channel.close()
    lines = (tmp_path / "sub" / "alerts.log").read_text().splitlines()
    assert "disk_full: [CRITICAL] disk at 95%" in lines[0] and "mount=/var" in lines[0]
    assert "disk_full: [RESOLVED] recovered" in lines[1]


def test_without_a_file_it_logs_at_the_alerts_level(caplog):
    channel = LogChannel.from_options("log", {"file": ""})
    with caplog.at_level(logging.INFO, logger="tray_alerts"):
        channel.send(Alert("api", "error", "HTTP 500"))
        channel.send(Alert("api", "error", "recovered", resolved=True))
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.INFO]


def test_its_file_rotates_and_keeps_the_backups(tmp_path):
    from tray_alerts.channels.log import RotatingLines

    lines = RotatingLines(tmp_path / "a.log", max_bytes=200, backups=2)
    for i in range(20):
        lines.write(f"line {i:02d} " + "x" * 40)
    lines.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.log", "a.log.1", "a.log.2"]
    assert all(p.stat().st_size <= 200 for p in tmp_path.iterdir())
    assert "line 19" in (tmp_path / "a.log").read_text()
