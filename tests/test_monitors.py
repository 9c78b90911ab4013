"""The local monitors against real conditions the tests set up: files, sockets, processes, commands, a local
HTTP server, this machine's memory and load. Only the disk monitor gets a fake usage function (a disk cannot
be filled on demand); it also has one check on a real path."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from werkzeug import Request, Response

from tray_alerts.channels.base import SettingError
from tray_alerts.model import Level
from tray_alerts.monitors import MONITOR_TYPES, MonitorSpec, build_monitor
from tray_alerts.monitors.command import MAX_OUTPUT
from tray_alerts.monitors.disk import DiskMonitor, Usage

PYTHON = shlex.quote(sys.executable)


def build(type_name: str, **raw: str):
    """The monitor a [monitor.t] section of this type and these keys makes."""
    return build_monitor("t", type_name, raw).monitor


def free_port() -> int:
    """A loopback port nothing listens on: bound to pick it, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting to be reaped counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ---- disk ------------------------------------------------------------------------------------------------


class FakeDisk:
    """A usage function whose percent used the test sets; total 1000 units so percent maps to whole units."""

    def __init__(self, percent: float = 0.0):
        self.percent = percent
        self.paths: list[str] = []

    def __call__(self, path: str) -> Usage:
        self.paths.append(path)
        used = round(self.percent * 10)
        return Usage(total=1000, used=used, free=1000 - used)


def disk_monitor(usage, **raw: str) -> DiskMonitor:
    """A disk monitor with the thresholds (and hysteresis) a config section gives, reading `usage`."""
    configured = build("disk", **{"path": "/data", "warning": "80", "error": "90", "critical": "95", **raw})
    return DiskMonitor("t", configured.path, configured.thresholds, usage=usage)


# percent, level, exact summary: up through every level, then down through the hysteresis bands (2 points).
DISK_WALK = [
    (50, None, "at 50% (warning at 80%)"),
    (79, None, "at 79% (warning at 80%)"),
    (80, Level.WARNING, "at 80% (warning at 80%)"),
    (85, Level.WARNING, "at 85% (warning at 80%)"),
    (93, Level.ERROR, "at 93% (error at 90%)"),
    (97, Level.CRITICAL, "at 97% (critical at 95%)"),
    (94, Level.CRITICAL, "at 94% (critical at 95%)"),   # under 95 but within 2: held
    (93, Level.CRITICAL, "at 93% (critical at 95%)"),   # exactly 95 - 2: still held
    (92, Level.ERROR, "at 92% (error at 90%)"),          # below 95 - 2: drops one level
    (89, Level.ERROR, "at 89% (error at 90%)"),          # held at error within 2 of 90
    (87, Level.WARNING, "at 87% (warning at 80%)"),
    (79, Level.WARNING, "at 79% (warning at 80%)"),     # held at warning within 2 of 80
    (77, None, "at 77% (warning at 80%)"),
    (60, None, "at 60% (warning at 80%)"),
]


def test_disk_walks_up_and_down_through_the_levels_with_hysteresis():
    disk = FakeDisk()
    monitor = disk_monitor(disk)
    assert monitor.label == "disk /data"
    seen = []
    for percent, level, summary in DISK_WALK:
        disk.percent = percent
        reading = monitor.check()
        seen.append((percent, reading.level, reading.summary))
        assert reading.value == pytest.approx(percent)
        assert reading.context["path"] == "/data"
        assert reading.context["used"] == f"{percent:.1f}%"
        assert reading.ok is (level is None)
    assert seen == DISK_WALK
    assert disk.paths == ["/data"] * len(DISK_WALK)


def test_disk_jumps_straight_to_critical_and_straight_back_to_ok():
    disk = FakeDisk(30)
    monitor = disk_monitor(disk)
    assert monitor.check().level is None
    disk.percent = 99
    assert (monitor.check().level, monitor.check().summary) == (Level.CRITICAL, "at 99% (critical at 95%)")
    disk.percent = 30
    assert (monitor.check().level, monitor.check().summary) == (None, "at 30% (warning at 80%)")


def test_disk_escalates_from_a_held_level_when_the_value_rises():
    disk = FakeDisk(81)
    monitor = disk_monitor(disk)
    assert monitor.check().level is Level.WARNING
    disk.percent = 79   # held at warning by hysteresis
    assert monitor.check().level is Level.WARNING
    disk.percent = 90
    assert monitor.check().level is Level.ERROR
    disk.percent = 95
    assert monitor.check().level is Level.CRITICAL


def test_disk_hysteresis_zero_and_a_wider_band():
    disk = FakeDisk(81)
    strict = disk_monitor(disk, hysteresis="0")
    assert strict.check().level is Level.WARNING
    disk.percent = 79
    assert strict.check().level is None

    disk.percent = 96
    wide = disk_monitor(disk, hysteresis="5")
    assert wide.check().level is Level.CRITICAL
    disk.percent = 90   # 95 - 5: held
    assert wide.check().level is Level.CRITICAL
    disk.percent = 89
    assert wide.check().level is Level.ERROR
    disk.percent = 76   # below 90 - 5 and below 80 but within 5 of it: warning
    assert wide.check().level is Level.WARNING
    disk.percent = 74
    assert wide.check().level is None


def test_disk_with_only_some_levels_set():
    disk = FakeDisk(99)
    monitor = disk_monitor(disk, warning="", error="", critical="97")
    reading = monitor.check()
    assert (reading.level, reading.summary) == (Level.CRITICAL, "at 99% (critical at 97%)")
    disk.percent = 50
    assert monitor.check().summary == "at 50% (critical at 97%)"
    assert monitor.check().level is None


def test_disk_context_shows_free_space_in_readable_units():
    gib = 2**30
    monitor = disk_monitor(lambda path: Usage(total=100 * gib, used=93 * gib, free=7 * gib))
    reading = monitor.check()
    assert reading.level is Level.ERROR
    assert reading.summary == "at 93% (error at 90%)"
    assert reading.context == {"path": "/data", "used": "93.0%", "free": "7.0 GB"}


def test_disk_percent_is_used_over_used_plus_available_like_df():
    # Reserved blocks: total is more than used + free; df's percent ignores them.
    monitor = disk_monitor(lambda path: Usage(total=1000, used=450, free=450))
    reading = monitor.check()
    assert reading.value == pytest.approx(50.0)
    assert reading.summary == "at 50% (warning at 80%)"


def test_disk_on_a_real_path(tmp_path):
    monitor = build("disk", path=str(tmp_path), warning="100")
    reading = monitor.check()
    usage = shutil.disk_usage(tmp_path)
    expected = 100.0 * usage.used / max(1, usage.used + usage.free)
    assert 0.0 <= reading.value <= 100.0
    assert reading.value == pytest.approx(expected, abs=1.0)
    assert reading.level is (Level.WARNING if reading.value >= 100 else None)
    assert reading.context["path"] == str(tmp_path)
    assert re.fullmatch(r"at \d+% \(warning at 100%\)", reading.summary)


# ---- http ------------------------------------------------------------------------------------------------


def test_http_flips_between_ok_and_bad_with_the_server(httpserver_ipv4):
    state = {"status": 200}
    httpserver_ipv4.expect_request("/health").respond_with_handler(
        lambda request: Response("fine", status=state["status"]))
    url = httpserver_ipv4.url_for("/health")
    monitor = build("http", url=url)
    assert monitor.label == f"http {url}"

    reading = monitor.check()
    assert reading.level is None
    assert re.fullmatch(r"answered HTTP 200 in \d+ ms", reading.summary)
    assert reading.value >= 0
    assert reading.context["url"] == url and reading.context["status"] == 200
    assert re.fullmatch(r"\d+ ms", reading.context["latency"])

    state["status"] = 500
    reading = monitor.check()
    assert reading.level is Level.ERROR
    assert reading.summary == "answered HTTP 500 (expected 2xx)"
    assert reading.context["status"] == 500

    state["status"] = 200
    assert monitor.check().ok
    assert len(httpserver_ipv4.log) == 3
    request, _ = httpserver_ipv4.log[0]
    assert request.headers["User-Agent"] == "tray-alerts monitor"


def test_http_bad_readings_use_the_configured_level(httpserver_ipv4):
    httpserver_ipv4.expect_request("/").respond_with_data("down", status=503)
    reading = build("http", url=httpserver_ipv4.url_for("/"), level="critical").check()
    assert (reading.level, reading.summary) == (Level.CRITICAL, "answered HTTP 503 (expected 2xx)")


@pytest.mark.parametrize("expect, status, ok", [
    ("2xx", 200, True),
    ("2xx", 204, True),
    ("2xx", 404, False),
    ("200, 204", 200, True),
    ("200, 204", 204, True),
    ("200, 204", 201, False),
    ("4XX", 418, True),
    ("5xx", 503, True),
    ("5xx", 200, False),
    ("404", 404, True),
])
def test_http_expect_variants(httpserver_ipv4, expect, status, ok):
    httpserver_ipv4.expect_request("/").respond_with_data("", status=status)
    reading = build("http", url=httpserver_ipv4.url_for("/"), expect=expect).check()
    assert reading.ok is ok
    assert reading.context["status"] == status
    if not ok:
        shown = ", ".join(code.strip().lower() for code in expect.split(","))
        assert reading.summary == f"answered HTTP {status} (expected {shown})"


@pytest.fixture
def redirecting(httpserver_ipv4):
    """/old answers 301 to /new; /broken answers 302 to /down (a 500)."""
    httpserver_ipv4.expect_request("/old").respond_with_data("", status=301,
                                                             headers={"Location": httpserver_ipv4.url_for("/new")})
    httpserver_ipv4.expect_request("/new").respond_with_data("new home", status=200)
    httpserver_ipv4.expect_request("/broken").respond_with_data(
        "", status=302, headers={"Location": httpserver_ipv4.url_for("/down")})
    httpserver_ipv4.expect_request("/down").respond_with_data("oops", status=500)
    return httpserver_ipv4


def requested_paths(server) -> list[str]:
    return [request.path for request, _ in server.log]


def test_http_follows_redirects_when_a_2xx_is_expected(redirecting):
    reading = build("http", url=redirecting.url_for("/old"), contains="new home").check()
    assert reading.ok
    assert reading.context["status"] == 200
    assert requested_paths(redirecting) == ["/old", "/new"]


def test_http_judges_the_final_answer_after_following_a_redirect(redirecting):
    reading = build("http", url=redirecting.url_for("/broken")).check()
    assert (reading.level, reading.summary) == (Level.ERROR, "answered HTTP 500 (expected 2xx)")
    assert requested_paths(redirecting) == ["/broken", "/down"]


@pytest.mark.parametrize("expect", ["3xx", "301", "200, 301"])
def test_http_an_expected_3xx_is_seen_because_the_redirect_is_not_followed(redirecting, expect):
    reading = build("http", url=redirecting.url_for("/old"), expect=expect).check()
    assert reading.ok, reading.summary
    assert reading.summary.startswith("answered HTTP 301 in ")
    assert reading.context["status"] == 301
    assert requested_paths(redirecting) == ["/old"]


def test_http_a_different_3xx_than_expected_is_bad(redirecting):
    reading = build("http", url=redirecting.url_for("/old"), expect="302").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "answered HTTP 301 (expected 302)")
    assert requested_paths(redirecting) == ["/old"]


def test_http_contains_present_and_missing(httpserver_ipv4):
    httpserver_ipv4.expect_request("/").respond_with_data("status: healthy", status=200)
    url = httpserver_ipv4.url_for("/")
    assert build("http", url=url, contains="healthy").check().ok
    reading = build("http", url=url, contains="ready").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "answered HTTP 200 without 'ready'")
    assert reading.context["status"] == 200


def test_http_a_wrong_status_is_reported_before_missing_text(httpserver_ipv4):
    httpserver_ipv4.expect_request("/").respond_with_data("healthy", status=500)
    reading = build("http", url=httpserver_ipv4.url_for("/"), contains="ready").check()
    assert reading.summary == "answered HTTP 500 (expected 2xx)"


def test_http_refused_connection():
    url = f"http://127.0.0.1:{free_port()}/health"
    reading = build("http", url=url).check()
    assert (reading.level, reading.summary) == (Level.ERROR, "connection refused")
    assert reading.context == {"url": url}
    assert reading.value is None


def test_http_no_answer_within_the_timeout(stalling_server):
    monitor = build("http", url=stalling_server.url_for("/slow"), timeout="500ms")
    assert monitor.timeout == 0.5
    started = time.monotonic()
    reading = monitor.check()
    assert time.monotonic() - started < 5.0
    assert reading.level is Level.ERROR
    assert reading.summary.startswith("no answer within ")
    assert reading.context == {"url": stalling_server.url_for("/slow")}


def sleepy(seconds: float):
    def handler(request: Request) -> Response:
        time.sleep(seconds)
        return Response("ok", status=200)
    return handler


def test_http_latency_warning(httpserver_ipv4):
    httpserver_ipv4.expect_request("/slow").respond_with_handler(sleepy(0.3))
    httpserver_ipv4.expect_request("/fast").respond_with_data("ok")
    reading = build("http", url=httpserver_ipv4.url_for("/slow"), latency_warning="100ms").check()
    assert reading.level is Level.WARNING
    assert re.fullmatch(r"slow: at \d+ ms \(warning at 100 ms\)", reading.summary)
    assert reading.value >= 0.3
    assert reading.context["status"] == 200

    fast = build("http", url=httpserver_ipv4.url_for("/fast"), latency_warning="2s").check()
    assert fast.ok


def test_http_latency_error_beyond_the_warning(httpserver_ipv4):
    httpserver_ipv4.expect_request("/slow").respond_with_handler(sleepy(0.3))
    reading = build("http", url=httpserver_ipv4.url_for("/slow"), latency_warning="50ms",
                    latency_error="150ms", latency_critical="5s").check()
    assert reading.level is Level.ERROR
    assert re.fullmatch(r"slow: at \d+ ms \(error at 150 ms\)", reading.summary)


# ---- file_age --------------------------------------------------------------------------------------------


def age_file(path: Path, seconds: float) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def test_file_age_levels_follow_the_modification_time(tmp_path):
    path = tmp_path / "backup.tar.gz"
    path.write_text("data")
    monitor = build("file_age", path=str(path), warning="1h", error="2h", critical="1d")
    assert monitor.label == f"file {path}"

    steps = [
        (30 * 60, None, "is 30 min old (warning at 1 h)"),
        (90 * 60, Level.WARNING, "is 1 h 30 min old (warning at 1 h)"),
        (3 * 3600, Level.ERROR, "is 3 h old (error at 2 h)"),
        (2 * 86400, Level.CRITICAL, "is 2 d old (critical at 1 d)"),
        (0, None, "is 0 s old (warning at 1 h)"),   # touched again
    ]
    for seconds, level, summary in steps:
        age_file(path, seconds)
        reading = monitor.check()
        assert (reading.level, reading.summary) == (level, summary)
        assert reading.value == pytest.approx(seconds, abs=5)
        assert reading.context["path"] == str(path)


def test_file_age_missing_file_has_its_own_message_and_level(tmp_path):
    path = tmp_path / "nightly.done"
    default = build("file_age", path=str(path), warning="1h")
    reading = default.check()
    assert (reading.level, reading.summary) == (Level.ERROR, "is missing")
    assert reading.context == {"path": str(path)}
    assert reading.value is None

    custom = build("file_age", path=str(path), warning="1h", missing="critical")
    assert custom.check().level is Level.CRITICAL


def test_file_age_a_file_that_appears_after_being_missing_is_judged_fresh(tmp_path):
    path = tmp_path / "heartbeat"
    path.write_text("")
    age_file(path, 3 * 3600)
    monitor = build("file_age", path=str(path), warning="1h", error="2h")
    assert monitor.check().level is Level.ERROR
    path.unlink()
    assert monitor.check().summary == "is missing"
    path.write_text("")
    reading = monitor.check()
    assert reading.ok, reading.summary


def test_file_age_expands_the_home_directory():
    monitor = build("file_age", path="~/some/backup", warning="1d")
    assert monitor.path == os.path.expanduser("~/some/backup")


# ---- tcp -------------------------------------------------------------------------------------------------


def test_tcp_open_then_closed_port():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    monitor = build("tcp", port=str(port), timeout="2s")
    assert monitor.label == f"tcp 127.0.0.1:{port}"
    try:
        reading = monitor.check()
        assert (reading.level, reading.summary) == (None, "is accepting connections")
        assert reading.context == {"host": "127.0.0.1", "port": port}
    finally:
        listener.close()
    reading = monitor.check()
    assert (reading.level, reading.summary) == (Level.ERROR, "refused the connection")
    assert reading.context == {"host": "127.0.0.1", "port": port}


def test_tcp_level_and_host_options():
    port = free_port()
    reading = build("tcp", host="127.0.0.1", port=str(port), level="warning").check()
    assert (reading.level, reading.summary) == (Level.WARNING, "refused the connection")


def test_tcp_no_answer_within_the_timeout():
    """A listener whose accept queue is full drops new SYNs (Linux), so connecting times out."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(5):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.3)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except (socket.timeout, TimeoutError):
                break
        else:
            pytest.skip("this kernel does not drop connections to a full accept queue")
        monitor = build("tcp", port=str(port), timeout="500ms")
        started = time.monotonic()
        reading = monitor.check()
        assert time.monotonic() - started < 5.0
        assert reading.level is Level.ERROR
        assert reading.summary.startswith("did not answer within ")
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# ---- process ---------------------------------------------------------------------------------------------


@pytest.fixture
def spawn():
    """Start a child process; every one still running is killed at teardown."""
    started: list[subprocess.Popen] = []

    def start(args: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(5)


def test_process_by_pattern_running_then_killed(spawn):
    marker = f"tray-alerts-test-{uuid.uuid4().hex}"
    monitor = build("process", pattern=f"{marker}-(one|two)")
    assert monitor.label == f"process {marker}-(one|two)"
    assert monitor.check().summary == "is not running"

    first = spawn([sys.executable, "-c", "import time; time.sleep(60)", f"{marker}-one"])
    assert wait_until(lambda: monitor.check().ok)
    reading = monitor.check()
    assert (reading.level, reading.summary, reading.value) == (None, "is running (1 process)", 1)
    assert reading.context == {"match": f"{marker}-(one|two)", "pids": str(first.pid)}

    second = spawn([sys.executable, "-c", "import time; time.sleep(60)", f"{marker}-two"])
    assert wait_until(lambda: monitor.check().value == 2)
    reading = monitor.check()
    assert reading.summary == "is running (2 processes)"
    assert set(reading.context["pids"].split(", ")) == {str(first.pid), str(second.pid)}

    stop(first)
    stop(second)
    reading = monitor.check()
    assert (reading.level, reading.summary, reading.value) == (Level.ERROR, "is not running", 0)
    assert reading.context == {"match": f"{marker}-(one|two)"}


def test_process_by_exact_name(spawn, tmp_path):
    name = f"tas{uuid.uuid4().hex[:9]}"   # 12 characters: under Linux's 15-character process name limit
    program = tmp_path / name
    shutil.copy("/bin/sleep", program)
    program.chmod(0o755)

    exact = build("process", name=name)
    prefix = build("process", name=name[:-1])
    assert exact.label == f"process {name}"
    assert exact.check().level is Level.ERROR

    child = spawn([str(program), "60"])
    assert wait_until(lambda: exact.check().ok)
    reading = exact.check()
    assert reading.summary == "is running (1 process)"
    assert reading.context == {"match": name, "pids": str(child.pid)}
    assert not prefix.check().ok   # a name is matched exactly, not as a prefix

    stop(child)
    assert exact.check().summary == "is not running"


def test_process_level_option():
    reading = build("process", pattern=f"no-such-process-{uuid.uuid4().hex}", level="critical").check()
    assert (reading.level, reading.summary) == (Level.CRITICAL, "is not running")


# ---- command ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code, level", [
    (0, None),
    (1, Level.WARNING),
    (2, Level.ERROR),
    (3, Level.ERROR),
    (42, Level.ERROR),
])
def test_command_exit_codes_with_the_default_levels(code, level):
    command = f"sh -c 'echo line one; echo line two; exit {code}'"
    reading = build("command", command=command).check()
    assert reading.level is level
    assert reading.value == code
    assert reading.context == {"command": command, "exit": code, "output": "line one\nline two"}
    assert reading.summary == ("exited 0" if code == 0 else f"exited {code}: line one")


def test_command_without_output_has_a_bare_summary():
    reading = build("command", command="false").check()
    assert (reading.level, reading.summary) == (Level.WARNING, "exited 1")
    assert reading.context["output"] == ""


def test_command_custom_exit_levels(monkeypatch):
    monitor = build("command", command="sh -c 'exit 1'", exit_levels="1: critical")
    assert monitor.check().level is Level.CRITICAL
    # Custom levels replace the defaults; a code they do not name is an error.
    several = build("command", command="sh -c 'exit $CODE'", exit_levels="3: warning, 4: Critical")
    for code, level in ((3, Level.WARNING), (4, Level.CRITICAL), (1, Level.ERROR), (2, Level.ERROR)):
        monkeypatch.setenv("CODE", str(code))
        assert several.check().level is level


def test_command_output_includes_stderr():
    reading = build("command", command="sh -c 'echo oops >&2; exit 2'").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "exited 2: oops")
    assert reading.context["output"] == "oops"


def test_command_output_is_cut_to_a_sane_length():
    reading = build("command", command=f"{PYTHON} -c \"print('x' * 5000); raise SystemExit(1)\"").check()
    assert reading.level is Level.WARNING
    assert len(reading.context["output"]) == MAX_OUTPUT
    assert reading.context["output"].endswith("…")
    assert len(reading.summary) <= len("exited 1: ") + MAX_OUTPUT


def test_command_gets_no_stdin():
    # `cat` would wait forever on an inherited terminal; with stdin closed it ends at once.
    reading = build("command", command="cat", timeout="5s").check()
    assert (reading.level, reading.summary) == (None, "exited 0")


def test_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    command = f"sh -c 'echo started; sleep 60 & echo $! > {pid_file}; wait'"
    monitor = build("command", command=command, timeout="500ms")
    started = time.monotonic()
    reading = monitor.check()
    assert time.monotonic() - started < 5.0   # the backgrounded child, which holds the output pipe, died too
    assert reading.level is Level.ERROR
    assert reading.summary.startswith("did not finish within ")
    assert reading.context == {"command": command, "output": "started"}
    child = int(pid_file.read_text())
    assert wait_until(lambda: gone(child))


def test_command_that_does_not_exist():
    reading = build("command", command=f"tray-alerts-no-such-command-{uuid.uuid4().hex[:8]} --flag").check()
    assert reading.level is Level.ERROR
    assert reading.summary == "cannot start: No such file or directory"
    assert reading.context["command"].startswith("tray-alerts-no-such-command-")


def test_command_with_shell_runs_a_pipe():
    reading = build("command", command="printf 'a\\nb\\nc\\n' | wc -l", shell="yes").check()
    assert reading.ok
    assert reading.context["output"] == "3"

    reading = build("command", command="echo hello | grep -q nomatch", shell="yes").check()
    assert (reading.level, reading.summary) == (Level.WARNING, "exited 1")


def test_command_with_shell_and_an_unknown_program_is_an_error():
    reading = build("command", command=f"no-such-program-{uuid.uuid4().hex[:8]}", shell="yes").check()
    assert reading.level is Level.ERROR
    assert reading.value == 127
    assert reading.summary.startswith("exited 127: ")


def test_command_without_shell_does_not_interpret_shell_syntax():
    reading = build("command", command="echo a | wc -l").check()
    assert reading.ok
    assert reading.context["output"] == "a | wc -l"


# ---- memory and load -------------------------------------------------------------------------------------


def test_memory_below_and_above_the_current_use():
    current = psutil.virtual_memory().percent
    assert 0 < current < 100

    ok = build("memory", warning=f"{(current + 100) / 2:.2f}")
    reading = ok.check()
    assert reading.level is None
    assert reading.value == pytest.approx(current, abs=5)
    assert re.fullmatch(r"at \d+% \(warning at \d+%\)", reading.summary)
    assert set(reading.context) == {"used", "available"}

    bad = build("memory", warning=f"{current / 2:.2f}", critical=f"{(current + 100) / 2:.2f}")
    reading = bad.check()
    assert reading.level is Level.WARNING
    assert reading.summary == f"at {reading.value:.0f}% (warning at {current / 2:.0f}%)"

    worst = build("memory", warning=f"{current / 4:.2f}", critical=f"{current / 2:.2f}")
    assert worst.check().level is Level.CRITICAL


def test_load_below_and_above_the_current_average():
    current = os.getloadavg()[0]
    ok = build("load", warning=f"{current * 1.5 + 1:.2f}")
    reading = ok.check()
    assert reading.level is None
    assert reading.summary == f"at {reading.value:.2f} (warning at {current * 1.5 + 1:.2f})"
    assert reading.context["cpus"] == (os.cpu_count() or 1)

    bad = build("load", warning=f"{current / 2:.2f}", error=f"{current * 1.5 + 1:.2f}")
    reading = bad.check()
    assert reading.level is Level.WARNING
    assert reading.summary.endswith(f"(warning at {current / 2:.2f})")


def test_load_period_and_per_cpu():
    cpus = os.cpu_count() or 1
    current = os.getloadavg()[2]
    monitor = build("load", period="15 min", per_cpu="yes", warning=f"{current / cpus * 1.5 + 1:.2f}")
    assert monitor.label == "load (15 min per CPU)"
    reading = monitor.check()
    assert reading.ok
    assert reading.value == pytest.approx(current / cpus, abs=0.5)
    assert reading.context["load"] == f"{reading.value * cpus:.2f}"
    assert build("load", period="5m", warning="1").label == "load (5 min)"


# ---- heartbeat -------------------------------------------------------------------------------------------


def test_heartbeat_before_the_first_ping():
    monitor = build("heartbeat", max_age="10m")
    assert monitor.label == "heartbeat t"
    assert monitor.started == pytest.approx(time.time(), abs=5)
    reading = monitor.check()
    assert (reading.level, reading.summary) == (None, "waiting for the first ping (limit 10 min)")

    monitor.started = time.time() - 11 * 60
    reading = monitor.check()
    assert (reading.level, reading.summary) == (Level.ERROR, "no ping since start 11 min ago (limit 10 min)")
    assert reading.value == pytest.approx(11 * 60, abs=5)


def test_heartbeat_recent_and_old_pings():
    monitor = build("heartbeat", max_age="1h", level="critical")
    monitor.started = time.time() - 86400   # would be bad without a ping; the pings decide
    pings = {"t": time.time() - 60}
    asked = []

    def last_ping(name):
        asked.append(name)
        return pings.get(name)

    monitor.last_ping = last_ping
    reading = monitor.check()
    assert (reading.level, reading.summary) == (None, "last ping 1 min ago (limit 1 h)")
    assert asked == ["t"]

    pings["t"] = time.time() - 2 * 3600
    reading = monitor.check()
    assert (reading.level, reading.summary) == (Level.CRITICAL, "last ping 2 h ago (limit 1 h)")
    assert reading.context["last_ping"] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(pings["t"]))

    pings["t"] = time.time()
    assert monitor.check().ok


# ---- build_monitor: the spec and config errors ----------------------------------------------------------


def test_every_registered_type_builds():
    assert set(MONITOR_TYPES) == {"disk", "http", "file_age", "tcp", "process", "command", "memory", "load",
                                  "heartbeat", "nagios", "tls_cert", "dns", "log_pattern", "systemd"}
    minimal = {
        "disk": {"path": "/", "warning": "90"},
        "http": {"url": "http://127.0.0.1/"},
        "file_age": {"path": "/tmp/x", "warning": "1d"},
        "tcp": {"port": "22"},
        "process": {"name": "sshd"},
        "command": {"command": "true"},
        "memory": {"warning": "90"},
        "load": {"warning": "4"},
        "heartbeat": {"max_age": "26h"},
        "nagios": {"command": "check_load -w 5,4,3 -c 10,8,6"},
        "tls_cert": {"host": "example.org"},
        "dns": {"name": "localhost"},
        "log_pattern": {"path": "/var/log/syslog", "pattern": "error"},
        "systemd": {"unit": "nginx.service"},
    }
    for type_name, raw in minimal.items():
        spec = build_monitor("n", type_name, {"type": type_name, "enabled": "yes", **raw})
        assert isinstance(spec, MonitorSpec)
        assert (spec.name, spec.monitor.type) == ("n", type_name)
        assert spec.interval == type(spec.monitor).DEFAULT_INTERVAL
        assert (spec.timeout, spec.failures_before_alert, spec.successes_before_clear, spec.channels) == \
            (10.0, 1, 1, None)


def test_common_options_shape_the_spec():
    spec = build_monitor("api", "http", {"url": "http://127.0.0.1/", "interval": "5m", "timeout": "3s",
                                         "failures_before_alert": "3", "successes_before_clear": "2",
                                         "channels": "desktop, slack,"})
    assert (spec.interval, spec.timeout, spec.failures_before_alert, spec.successes_before_clear) == \
        (300.0, 3.0, 3, 2)
    assert spec.channels == ("desktop", "slack")
    assert spec.monitor.timeout == 3.0


def setting_error(type_name: str, **raw: str) -> SettingError:
    with pytest.raises(SettingError) as caught:
        build_monitor("t", type_name, raw)
    return caught.value


def test_unknown_key_is_named():
    error = setting_error("disk", path="/", warning="90", warnign="95")
    assert error.key == "warnign"
    assert "unknown key" in error.problem
    assert "warning" in error.problem   # lists the known keys
    assert setting_error("tcp", port="22", url="http://x").key == "url"


@pytest.mark.parametrize("type_name, raw, key", [
    ("disk", {"warning": "90"}, "path"),
    ("file_age", {"warning": "1h"}, "path"),
    ("http", {}, "url"),
    ("http", {"url": "   "}, "url"),
    ("tcp", {}, "port"),
    ("command", {}, "command"),
    ("heartbeat", {}, "max_age"),
    ("process", {}, "name"),
    ("disk", {"path": "/"}, "warning"),
    ("memory", {}, "warning"),
    ("load", {}, "warning"),
    ("file_age", {"path": "/x"}, "warning"),
])
def test_missing_required_settings(type_name, raw, key):
    assert setting_error(type_name, **raw).key == key


@pytest.mark.parametrize("type_name, raw, key", [
    ("disk", {"path": "/", "warning": "90", "error": "80"}, "error"),
    ("disk", {"path": "/", "warning": "80", "error": "90", "critical": "85"}, "critical"),
    ("memory", {"warning": "90", "critical": "80"}, "critical"),
    ("file_age", {"path": "/x", "warning": "2h", "error": "1h"}, "error"),
    ("http", {"url": "http://x/", "latency_warning": "2s", "latency_error": "500ms"}, "latency_error"),
])
def test_thresholds_out_of_order(type_name, raw, key):
    error = setting_error(type_name, **raw)
    assert error.key == key
    assert "must not be below" in error.problem


def test_equal_thresholds_are_allowed():
    assert build("disk", path="/", warning="90", error="90").thresholds.limits == {Level.WARNING: 90,
                                                                                   Level.ERROR: 90}


@pytest.mark.parametrize("type_name, raw, key", [
    ("disk", {"path": "/", "warning": "lots"}, "warning"),
    ("disk", {"path": "/", "warning": "90", "hysteresis": "some"}, "hysteresis"),
    ("memory", {"warning": "nan"}, "warning"),
    ("memory", {"warning": "inf"}, "warning"),
    ("file_age", {"path": "/x", "warning": "soon"}, "warning"),
    ("file_age", {"path": "/x", "warning": "0s"}, "warning"),
    ("heartbeat", {"max_age": "-5m"}, "max_age"),
    ("heartbeat", {"max_age": "26 hours"}, "max_age"),
    ("http", {"url": "http://x/", "latency_warning": "quick"}, "latency_warning"),
    ("http", {"url": "http://x/", "verify": "maybe"}, "verify"),
    ("http", {"url": "http://x/", "level": "severe"}, "level"),
    ("command", {"command": "true", "shell": "perhaps"}, "shell"),
    ("tcp", {"port": "ssh"}, "port"),
    ("tcp", {"port": "0"}, "port"),
    ("tcp", {"port": "65536"}, "port"),
    ("tcp", {"port": "22.5"}, "port"),
    ("load", {"warning": "1", "period": "10"}, "period"),
    ("load", {"warning": "1", "per_cpu": "sometimes"}, "per_cpu"),
    ("command", {"command": "true", "timeout": "fast"}, "timeout"),
    ("command", {"command": "true", "interval": "0"}, "interval"),
    ("command", {"command": "true", "failures_before_alert": "0"}, "failures_before_alert"),
    ("command", {"command": "true", "failures_before_alert": "1.5"}, "failures_before_alert"),
    ("command", {"command": "true", "successes_before_clear": "x"}, "successes_before_clear"),
])
def test_bad_numbers_durations_and_words(type_name, raw, key):
    assert setting_error(type_name, **raw).key == key


def test_numbers_may_carry_a_percent_sign():
    assert build("disk", path="/", warning="80%").thresholds.limits == {Level.WARNING: 80.0}


def test_process_needs_exactly_one_of_name_and_pattern():
    error = setting_error("process", name="sshd", pattern="ssh.*")
    assert error.key == "name"
    assert "either" in error.problem


def test_process_bad_regex():
    error = setting_error("process", pattern="([unclosed")
    assert error.key == "pattern"
    assert "not a regular expression" in error.problem


@pytest.mark.parametrize("text", ["1 warning", "x: warning", "1: severe", "1: warning,", "-1: error"])
def test_command_bad_exit_levels(text):
    assert setting_error("command", command="true", exit_levels=text).key == "exit_levels"


def test_command_that_cannot_be_split_into_words():
    error = setting_error("command", command="echo 'unclosed")
    assert error.key == "command"
    assert build("command", command="echo 'unclosed", shell="yes").shell is True   # the shell's business then


@pytest.mark.parametrize("url", ["127.0.0.1:8000/health", "example.com", "ftp://example.com/"])
def test_http_url_needs_a_scheme(url):
    error = setting_error("http", url=url)
    assert error.key == "url"
    assert "http://" in error.problem


@pytest.mark.parametrize("expect", ["200 OK", "600", "2x", "2xxx", "abc", "099"])
def test_http_bad_expect(expect):
    error = setting_error("http", url="http://127.0.0.1/", expect=expect)
    assert error.key == "expect"


def test_http_expect_is_normalised():
    assert build("http", url="http://127.0.0.1/", expect=" 200 , 2XX, ").expect == ("200", "2xx")
