"""The nagios monitor: the plugin-output parser against the guidelines' grammar and examples, then the real
plugins of Debian's monitoring-plugins-basic (check_dummy, check_load, check_procs, check_disk), small plugins
written here for what those cannot show (long output, hangs, signals), and the runner end to end."""
from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import psutil
import pytest

from conftest import RecordingChannel
from polling import wait_until
from tray_alerts import Engine, Level
from tray_alerts.channels.base import SettingError
from tray_alerts.monitors import MonitorSpec, build_monitor
from tray_alerts.monitors.nagios import PLUGIN_DIR, PerfDatum, parse_perfdata, parse_plugin_output, perf_context
from tray_alerts.monitors.runner import MonitorRunner

CHECK_DUMMY = Path(PLUGIN_DIR) / "check_dummy"
needs_plugins = pytest.mark.skipif(not CHECK_DUMMY.exists(),
                                   reason="needs monitoring-plugins-basic: apt-get install monitoring-plugins-basic")


def build(**raw: str):
    return build_monitor("t", "nagios", raw).monitor


def plugin(directory: Path, name: str, script: str) -> Path:
    """An executable shell script plugin in `directory`."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# ---- parsing: the output format ----------------------------------------------------------------------------

DISK_LONG = """DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968
/ 15272 MB (77%);
/boot 68 MB (69%);
/home 69357 MB (27%);
/var/log 819 MB (84%); | /boot=68MB;88;93;0;98
/home=69357MB;253404;253409;0;253414
/var/log=818MB;970;975;0;980
"""

OUTPUT_CASES = [
    # text, message, long text, perfdata labels
    ("DISK OK - free space: / 3326 MB (56%);", "DISK OK - free space: / 3326 MB (56%);", "", []),
    ("PING ok - Packet loss = 0%, RTA = 0.80 ms | percent_packet_loss=0 rta=0.80",
     "PING ok - Packet loss = 0%, RTA = 0.80 ms", "", ["percent_packet_loss", "rta"]),
    ("LOAD OK - total load average: 3.90, 2.53, 1.71|load1=3.900;5.000;10.000;0; load5=2.530;4.000;8.000;0; "
     "load15=1.710;3.000;6.000;0; \n", "LOAD OK - total load average: 3.90, 2.53, 1.71", "",
     ["load1", "load5", "load15"]),
    (DISK_LONG, "DISK OK - free space: / 3326 MB (56%);",
     "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);",
     ["/", "/boot", "/home", "/var/log"]),
    ("WARNING: two lines\nsecond line of detail\nthird", "WARNING: two lines", "second line of detail\nthird", []),
    ("OK\n| late=1 later=2\nlast=3", "OK", "", ["late", "later", "last"]),   # perfdata only after the first line
    ("", "", "", []),
    ("   \n", "", "", []),
    ("no perfdata but a pipe |", "no perfdata but a pipe", "", []),
]


@pytest.mark.parametrize("text, message, long_text, labels", OUTPUT_CASES)
def test_parse_plugin_output(text, message, long_text, labels):
    parsed_message, parsed_long, perfdata = parse_plugin_output(text)
    assert (parsed_message, parsed_long) == (message, long_text)
    assert [datum.label for datum in perfdata] == labels


def test_long_output_perfdata_values():
    _, _, perfdata = parse_plugin_output(DISK_LONG)
    assert perfdata[0] == PerfDatum("/", 2643.0, "MB", "5948", "5958", "0", "5968", text="2643")
    assert perfdata[-1] == PerfDatum("/var/log", 818.0, "MB", "970", "975", "0", "980", text="818")


PERFDATA_CASES = [
    # text, [(label, value, uom, warn, crit, min, max)]
    ("time=0.270634s;;;0.000000 size=20156B;;;0",
     [("time", 0.270634, "s", "", "", "0.000000", ""), ("size", 20156.0, "B", "", "", "0", "")]),
    ("/=382MB;15264;15269;; /var=218MB;9443;9448",
     [("/", 382.0, "MB", "15264", "15269", "", ""), ("/var", 218.0, "MB", "9443", "9448", "", "")]),
    ("cpu_user=0.5%;99.9;-9;", [("cpu_user", 0.5, "%", "99.9", "-9", "", "")]),
    ("a=1s b=2ms c=3us d=4% e=5B f=6KB g=7MB h=8TB i=9c j=10",
     [(label, float(n), uom, "", "", "", "") for n, (label, uom) in enumerate(
         [("a", "s"), ("b", "ms"), ("c", "us"), ("d", "%"), ("e", "B"), ("f", "KB"), ("g", "MB"), ("h", "TB"),
          ("i", "c"), ("j", "")], start=1)]),
    ("'label with spaces'=5;10;20", [("label with spaces", 5.0, "", "10", "20", "", "")]),
    ("'a ''b'' = c'=0%;100;90;", [("a 'b' = c", 0.0, "%", "100", "90", "", "")]),
    ("'equals=sign'=1", [("equals=sign", 1.0, "", "", "", "", "")]),
    ("unknown=U;5;10;0;100", [("unknown", None, "", "5", "10", "0", "100")]),
    ("temp=-12.5;@-20:-10;~:0;-40;60", [("temp", -12.5, "", "@-20:-10", "~:0", "-40", "60")]),
    ("procs=89;;;0;", [("procs", 89.0, "", "", "", "0", "")]),
    ("rtt=.5ms big=1e3", [("rtt", 0.5, "ms", "", "", "", ""), ("big", 1000.0, "", "", "", "", "")]),
    ("  lots   of=1   spaces=2  ", [("of", 1.0, "", "", "", "", ""), ("spaces", 2.0, "", "", "", "", "")]),
    # not perfdata: skipped, the rest still parsed
    ("junk x= =3 'unterminated=4", []),
    ("bad=abc good=1", [("good", 1.0, "", "", "", "", "")]),
    ("'quoted'noequals ok=2", [("ok", 2.0, "", "", "", "", "")]),
    ("", []),
]


@pytest.mark.parametrize("text, items", PERFDATA_CASES)
def test_parse_perfdata(text, items):
    parsed = parse_perfdata(text)
    assert [(d.label, d.value, d.uom, d.warn, d.crit, d.min, d.max) for d in parsed] == items


@pytest.mark.parametrize("text, shown", [
    ("load1=4.170", "4.17"), ("load1=3.000", "3"), ("disk=91%", "91%"), ("t=0.270634s", "0.270634s"),
    ("n=+5", "5"), ("n=-0.50", "-0.5"), ("n=0.000", "0"), ("u=U", "unknown"), ("b=25137512448B", "25137512448B"),
    ("e=1.50e3", "1.50e3"), ("z=10", "10"),
])
def test_perfdatum_shown_keeps_the_unit_and_drops_trailing_zeros(text, shown):
    (datum,) = parse_perfdata(text)
    assert datum.shown == shown


def test_perf_context_renames_labels_that_clash():
    perfdata = parse_perfdata("load1=1 output=2 level=3 exit=4 message=5 event=6 command=7 stderr=8 self=9")
    assert perf_context(perfdata) == {"load1": "1", "output_": "2", "level_": "3", "exit_": "4", "message_": "5",
                                      "event_": "6", "command_": "7", "stderr_": "8", "self_": "9"}


# ---- the real plugins ----------------------------------------------------------------------------------------


@needs_plugins
@pytest.mark.parametrize("state, level, text", [
    (0, None, "OK: all good"),
    (1, Level.WARNING, "WARNING: getting full"),
    (2, Level.CRITICAL, "CRITICAL: on fire"),
    (3, Level.WARNING, "UNKNOWN: cannot tell"),
])
def test_check_dummy_states_become_levels_and_its_text_the_message(state, level, text):
    words = text.partition(": ")[2]
    monitor = build(command=f"check_dummy {state} '{words}'")
    assert monitor.label == "nagios check_dummy"
    reading = monitor.check()
    assert (reading.level, reading.summary, reading.standalone) == (level, text, True)
    assert reading.context == {"command": f"check_dummy {state} '{words}'", "exit": state}
    assert reading.value is None   # no perfdata
    assert reading.message(monitor.label) == text   # not prefixed with the label


@needs_plugins
def test_unknown_takes_the_configured_level():
    assert build(command="check_dummy 3 x", unknown="critical").check().level is Level.CRITICAL
    assert build(command="check_dummy 3 x", unknown="info").check().level is Level.INFO
    # check_dummy refuses a state beyond 3 by answering UNKNOWN itself
    reading = build(command="check_dummy 4 x").check()
    assert (reading.level, reading.summary) == (Level.WARNING, "UNKNOWN: Status 4 is not a supported error state")


@needs_plugins
def test_check_load_perfdata_becomes_context_and_the_first_value_the_reading():
    reading = build(command="check_load -w 1000,1000,1000 -c 2000,2000,2000").check()
    assert reading.level is None and reading.standalone
    assert reading.summary.startswith("LOAD OK - total load average: ")
    assert "|" not in reading.summary and "load1=" not in reading.summary
    assert list(reading.context) == ["load1", "load5", "load15", "command", "exit"]
    assert reading.value == pytest.approx(os.getloadavg()[0], abs=2.0)
    assert float(reading.context["load1"]) == reading.value
    assert reading.context["load1"] == "0" or not reading.context["load1"].endswith("0")   # 3.900 -> 3.9


@needs_plugins
def test_check_procs_warning_and_critical():
    warning = build(command="check_procs -w 1 -c 1000000").check()   # more than one process: warning
    assert warning.level is Level.WARNING
    assert warning.summary.startswith("PROCS WARNING: ") and warning.summary.endswith(" processes")
    assert warning.value == float(warning.context["procs"]) >= 2
    assert warning.value == pytest.approx(len(psutil.pids()), rel=0.5)
    critical = build(command="check_procs -w 1 -c 1").check()
    assert (critical.level, critical.context["exit"]) == (Level.CRITICAL, 2)
    assert critical.summary.startswith("PROCS CRITICAL: ")


@needs_plugins
def test_check_disk_on_a_real_path(tmp_path):
    reading = build(command=f"check_disk -w 0 -c 0 -p {tmp_path}").check()
    assert reading.level is None, reading.summary
    assert reading.summary.startswith("DISK OK")
    (label,) = [key for key in reading.context if key not in ("command", "exit")]
    assert reading.context[label].endswith("B") and label.startswith("/")
    used = shutil.disk_usage(tmp_path).used
    assert reading.value == pytest.approx(used, rel=0.2)


@needs_plugins
def test_a_plugin_with_bad_arguments_is_unknown_with_its_usage_in_the_context():
    reading = build(command="check_disk").check()
    assert (reading.level, reading.summary) == (Level.WARNING, "check_disk: Could not parse arguments")
    assert reading.context["exit"] == 3
    assert reading.context["output"].startswith("Usage:")


@needs_plugins
def test_the_recovery_carries_the_plugins_ok_text_through_the_runner(tmp_path):
    """check_dummy through a wrapper in plugin_dir whose state a file says: UNKNOWN, CRITICAL, OK."""
    state = tmp_path / "state"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    plugin(plugins, "check_flip", f'exec {CHECK_DUMMY} $(cat {state}) "$(cat {state}.text)" \n')
    monitor = build(command="check_flip", plugin_dir=str(plugins))
    channel = RecordingChannel("rec")
    with Engine({"rec": channel}, {level: ["rec"] for level in Level}, tmp_path / "state.db") as engine:
        runner = MonitorRunner(engine, [MonitorSpec(monitor, interval=3600, timeout=5)])
        for code, text in ((3, "sensor offline"), (2, "too hot"), (0, "back to normal")):
            state.write_text(str(code))
            Path(f"{state}.text").write_text(text)
            runner.run_once("t")
        (status,) = runner.statuses()
        assert status.message == "OK: back to normal"
    assert channel.kinds() == ["fired:warning", "fired:critical", "resolved:critical"]
    assert [alert.message for alert in channel.sent] == ["UNKNOWN: sensor offline", "CRITICAL: too hot",
                                                         "OK: back to normal"]
    assert channel.sent[2].context == {"command": "check_flip", "exit": 0}


# ---- plugins written here: long output, stderr, exits that are not states, hangs ---------------------------


def test_long_output_and_later_perfdata_go_into_the_context(tmp_path):
    script = "cat <<'EOF'\n" + DISK_LONG + "EOF\nexit 1\n"
    plugin(tmp_path, "check_long", script)
    reading = build(command="check_long", plugin_dir=str(tmp_path)).check()
    assert (reading.level, reading.summary) == (Level.WARNING, "DISK OK - free space: / 3326 MB (56%);")
    assert reading.context == {"/": "2643MB", "/boot": "68MB", "/home": "69357MB", "/var/log": "818MB",
                               "output": "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n"
                                         "/var/log 819 MB (84%);",
                               "command": "check_long", "exit": 1}
    assert reading.value == 2643.0


def test_stderr_is_kept_apart_and_the_message_is_stdout(tmp_path):
    plugin(tmp_path, "check_noisy", "echo 'deprecated option' >&2\necho 'WARNING: real text|x=1'\nexit 1\n")
    reading = build(command="check_noisy", plugin_dir=str(tmp_path)).check()
    assert (reading.level, reading.summary) == (Level.WARNING, "WARNING: real text")
    assert reading.context["stderr"] == "deprecated option" and reading.context["x"] == "1"


def test_a_plugin_without_output_says_its_state(tmp_path):
    plugin(tmp_path, "check_silent", "exit 2\n")
    monitor = build(command="check_silent", plugin_dir=str(tmp_path))
    reading = monitor.check()
    assert (reading.level, reading.summary, reading.standalone) == (Level.CRITICAL, "returned CRITICAL without"
                                                                    " any output", False)
    assert reading.message(monitor.label) == "nagios check_silent returned CRITICAL without any output"


@pytest.mark.parametrize("script, summary", [
    ("echo 'weird'\nexit 7\n", "check failed: exit 7, not a plugin state (0-3): weird"),
    ("echo 'only on stderr' >&2\nexit 42\n", "check failed: exit 42, not a plugin state (0-3): only on stderr"),
    ("kill -SEGV $$\n", "check failed: killed by SIGSEGV, not a plugin state (0-3)"),
])
def test_exits_that_are_not_plugin_states_are_check_failures(tmp_path, script, summary):
    plugin(tmp_path, "check_odd", script)
    monitor = build(command="check_odd", plugin_dir=str(tmp_path))
    reading = monitor.check()
    assert (reading.level, reading.summary, reading.standalone) == (Level.ERROR, summary, False)
    assert reading.message(monitor.label) == f"nagios check_odd {summary}"


def test_past_the_timeout_the_plugin_and_its_children_are_killed(tmp_path):
    pid_file = tmp_path / "child.pid"
    plugin(tmp_path, "check_hang", f"echo started\nsleep 60 &\necho $! > {pid_file}\nwait\n")
    monitor = build(command="check_hang", plugin_dir=str(tmp_path), timeout="500ms")
    reading = monitor.check()
    assert reading.level is Level.ERROR and reading.summary.startswith("did not finish within ")
    assert reading.context == {"command": "check_hang", "output": "started"}
    child = int(pid_file.read_text())
    wait_until(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE,
               "the plugin's child to die", timeout=10)


def test_plugin_dir_comes_before_path_and_a_path_is_used_as_it_is(tmp_path, monkeypatch):
    plugins, elsewhere = tmp_path / "plugins", tmp_path / "bin"
    plugins.mkdir()
    elsewhere.mkdir()
    plugin(plugins, "check_where", "echo 'OK: from plugin_dir'\n")
    plugin(elsewhere, "check_where", "echo 'OK: from PATH'\n")
    plugin(elsewhere, "check_only_on_path", "echo 'OK: found on PATH'\n")
    monkeypatch.setenv("PATH", f"{elsewhere}{os.pathsep}{os.environ['PATH']}")
    assert build(command="check_where", plugin_dir=str(plugins)).check().summary == "OK: from plugin_dir"
    assert build(command="check_only_on_path", plugin_dir=str(plugins)).check().summary == "OK: found on PATH"
    assert build(command=f"{elsewhere}/check_where", plugin_dir=str(plugins)).check().summary == "OK: from PATH"


def test_a_missing_plugin_says_where_it_looked(tmp_path):
    reading = build(command="check_not_there_at_all -w 1", plugin_dir=str(tmp_path)).check()
    assert (reading.level, reading.summary) == (
        Level.ERROR, f"cannot start: check_not_there_at_all is not in {tmp_path} or on PATH")
    reading = build(command=f"{tmp_path}/check_gone").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "cannot start: No such file or directory")


def test_plugins_run_with_c_numbers(tmp_path):
    plugin(tmp_path, "check_locale", 'echo "OK: LC_NUMERIC=$LC_NUMERIC"\n')
    assert build(command="check_locale", plugin_dir=str(tmp_path)).check().summary == "OK: LC_NUMERIC=C"


def test_a_python_plugin_with_quoted_labels(tmp_path):
    script = tmp_path / "check_py"
    script.write_text(f"#!{sys.executable}\n"
                      "print(\"OK: fine | 'free space'=91%;80;90 '''quoted'''=U\")\n")
    script.chmod(0o755)
    reading = build(command="check_py", plugin_dir=str(tmp_path)).check()
    assert reading.summary == "OK: fine"
    assert reading.context == {"free space": "91%", "'quoted'": "unknown", "command": "check_py", "exit": 0}
    assert reading.value == 91.0


# ---- settings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, key", [
    ({}, "command"),
    ({"command": "check_load 'unclosed"}, "command"),
    ({"command": "''"}, "command"),
    ({"command": "check_load", "unknown": "sometimes"}, "unknown"),
    ({"command": "check_load", "shell": "yes"}, "shell"),
])
def test_settings_errors_name_the_key(raw, key):
    with pytest.raises(SettingError) as caught:
        build_monitor("t", "nagios", raw)
    assert caught.value.key == key


def test_defaults():
    monitor = build(command="check_load -w 5,4,3 -c 10,8,6")
    assert (monitor.plugin_dir, monitor.unknown, monitor.args) == (
        "/usr/lib/nagios/plugins", Level.WARNING, ["check_load", "-w", "5,4,3", "-c", "10,8,6"])
    assert build_monitor("t", "nagios", {"command": "check_load"}).interval == 60.0
