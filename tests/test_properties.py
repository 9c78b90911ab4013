"""Property tests (hypothesis): whatever callers throw at the engine, the push API and the settings reader, they
answer the documented way and keep what they store bounded and readable.

(a) Engine.raise_alert with arbitrary event ids, levels, messages and contexts: a ValueError (bad level or event
    id) that records nothing, or a firing/debounce whose stored record is bounded, JSON-clean and still there when
    the state file is opened again.
(b) The push API with arbitrary JSON and raw bytes: 200 (valid), 400 or 413 with {"error": …}, never a 500, and
    the server keeps answering.
(c) Arbitrary text as a settings file: load_settings (and building the channels) succeeds or raises ConfigError.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import tempfile

import pytest
import requests
from hypothesis import HealthCheck, given, note, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from tray_alerts import DeliveryError, Engine, Level
from tray_alerts import redact as redact_module
from tray_alerts.api import MAX_BODY, PushApi
from tray_alerts.config import ConfigError, load_settings
from tray_alerts.model import (MAX_CONTEXT_ITEMS, MAX_CONTEXT_KEY_LENGTH, MAX_CONTEXT_VALUE_LENGTH, MAX_EVENT_LENGTH,
                               MAX_MESSAGE_LENGTH, context_arguments)
from tray_alerts.state import StateStore
from tray_alerts.wiring import build_channels

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):  # keep hypothesis's caches out of the checkout
    _HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="tray-alerts-hypothesis-")
    set_hypothesis_home_dir(_HYPOTHESIS_HOME)
    atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
TOKEN = "property-token-5b1f0c"
HTTP_TIMEOUT = 10.0
LEVEL_NAMES = [level.value for level in Level]

# ---- the documented rules, as oracles -------------------------------------------------------------------------


def level_ok(level) -> bool:
    """README: a level name (info, warning, error, critical) in any case."""
    return isinstance(level, str) and level.strip().lower() in LEVEL_NAMES


def event_ok(event) -> bool:
    """README/model: a non-empty line of printable text, at most MAX_EVENT_LENGTH characters."""
    return isinstance(event, str) and bool(event.strip()) and len(event) <= MAX_EVENT_LENGTH and event.isprintable()


def has_surrogates(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


# ---- strategies -----------------------------------------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())  # every code point: controls, surrogates, unassigned, RTL marks…
ANY_TEXT = st.text(ANY_CHAR, max_size=40)


def _random_case(name: str, flips: list[bool], pad: tuple[str, str]) -> str:
    return pad[0] + "".join(char.upper() if flip else char for char, flip in zip(name, flips)) + pad[1]


LEVEL_TEXT = st.builds(_random_case, st.sampled_from(LEVEL_NAMES), st.lists(st.booleans(), min_size=8, max_size=8),
                       st.tuples(st.sampled_from(["", " ", "\t"]), st.sampled_from(["", " ", "\n"])))
LEVELS = st.one_of(
    LEVEL_TEXT, st.sampled_from(list(Level)), ANY_TEXT,
    st.sampled_from(["warn", "severe", "crit", "INFO!", "", "  ", "inf o", "ınfo", "CRİTİCAL"]),
    st.integers(), st.none(), st.floats(), st.booleans(), st.binary(max_size=8), st.just(b"info"),
    st.lists(st.sampled_from(LEVEL_NAMES), max_size=2),
)
KNOWN_EVENTS = ["disk_full", "backup/nightly job", "naïve#1", "Ünïcødé ☃ ❄", "e" * MAX_EVENT_LENGTH, "db@host:5432"]
EVENTS = st.one_of(
    st.sampled_from(KNOWN_EVENTS), ANY_TEXT, st.text(min_size=1, max_size=30),
    st.text(ANY_CHAR, min_size=MAX_EVENT_LENGTH - 3, max_size=MAX_EVENT_LENGTH + 3),
    st.builds(lambda char, count: char * count, ANY_CHAR, st.integers(1, 100_000)),  # huge
    st.sampled_from(["", "   ", "a\nb", "tab\there", "nul\x00", "line\u2028sep", "\ud800", "bidi\u202eevil", "\x1b[31m"]),
)
MESSAGES = st.one_of(
    ANY_TEXT, st.text(max_size=200),
    st.builds(lambda piece, count: piece * count, st.text(ANY_CHAR, min_size=1, max_size=10),
              st.integers(1, 100_000)),  # up to 1 MB
    st.just("x" * 1_000_000), st.just("é" * (MAX_MESSAGE_LENGTH + 1)), st.just("\ud83d" * 5000),
)


class Opaque:
    """An object JSON knows nothing about."""


class Unprintable:
    """An object whose str() and repr() both fail."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    __str__ = __repr__


def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _cycle() -> list:
    value: list = [1]
    value.append(value)
    return value


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=2**70),
    st.builds(pow, st.just(10), st.integers(4300, 6000)), st.just(-(10**400)),  # past Python's int->str limit
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
    ANY_TEXT, st.builds(lambda piece, count: piece * count, st.text(ANY_CHAR, min_size=1, max_size=5),
                        st.integers(1, 5000)),
    st.binary(max_size=20), st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.builds(object), st.builds(Opaque), st.builds(Unprintable), st.builds(_cycle),
    st.builds(_deep, st.integers(1, 3000)), st.frozensets(st.integers(), max_size=3),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.tuples(children, children), st.sets(st.integers(), max_size=3),
        st.dictionaries(st.one_of(ANY_TEXT, st.integers(), st.floats(), st.none()), children, max_size=4),
    ),
    max_leaves=10,
)
CONTEXT_KEYS = st.one_of(
    ANY_TEXT, st.sampled_from(["event", "level", "message", "self", "", "…", "event_", "k" * 500]),
    st.text(ANY_CHAR, min_size=MAX_CONTEXT_KEY_LENGTH - 2, max_size=MAX_CONTEXT_KEY_LENGTH + 300),
)
CONTEXTS = st.one_of(
    st.dictionaries(CONTEXT_KEYS, VALUES, max_size=8),
    st.builds(lambda count: {f"key{index}": index for index in range(count)}, st.integers(0, 5000)),  # very many
)


# ---- (a) Engine.raise_alert ---------------------------------------------------------------------------------------

class Sink:
    """Records alerts and checks every one it gets can be serialised strictly."""

    def __init__(self, name: str):
        self.name = name
        self.count = 0
        self.problems: list[str] = []

    def send(self, alert) -> None:
        self.count += 1
        try:
            json.dumps(alert.to_dict(), allow_nan=False).encode("utf-8")
            alert.format().encode("utf-8")
        except Exception as error:  # recorded, asserted on by the test (a channel must never see such an alert)
            self.problems.append(f"{type(error).__name__}: {error}")


class Flaky(Sink):
    """Fails every other delivery in a way worth retrying, so the outbox stores alerts too."""

    def send(self, alert) -> None:
        super().send(alert)
        if self.count % 2:
            raise DeliveryError("HTTP 503 from the stand-in", retryable=True)


class Broken(Sink):
    """A channel with a bug: it raises something that is not a DeliveryError."""

    def send(self, alert) -> None:
        super().send(alert)
        raise RuntimeError("channel bug")


ENGINE_ROUTES = {"info": ["sink"], "warning": ["sink", "flaky"], "error": ["sink", "broken"],
                 "critical": ["sink", "flaky", "broken", "missing"]}


def snapshot(engine: Engine) -> tuple:
    """What the engine has recorded: the newest history id and every active event with its repeat count."""
    newest = engine.history(1)
    return (newest[0].id if newest else 0,
            sorted((record.event, record.level.value, record.seen) for record in engine.active_events()))


def assert_bounded(record) -> None:
    assert isinstance(record.message, str) and len(record.message) <= MAX_MESSAGE_LENGTH
    record.message.encode("utf-8")  # storable: no lone surrogates
    assert isinstance(record.context, dict) and len(record.context) <= MAX_CONTEXT_ITEMS + 1
    for key, value in record.context.items():
        assert isinstance(key, str) and len(key) <= MAX_CONTEXT_KEY_LENGTH
        assert value is None or isinstance(value, (bool, int, float, str)), type(value)
        if isinstance(value, float):
            assert math.isfinite(value)
        if isinstance(value, int) and not isinstance(value, bool):
            assert abs(value) < 2**64
        if isinstance(value, str):
            assert len(value) <= MAX_CONTEXT_VALUE_LENGTH
    json.dumps(record.context, allow_nan=False).encode("utf-8")


def test_raise_alert_with_arbitrary_input_raises_value_error_or_stores_bounded_data(tmp_path):
    state_path = tmp_path / "state" / "state.db"
    channels = {"sink": Sink("sink"), "flaky": Flaky("flaky"), "broken": Broken("broken")}
    engine = Engine(channels, ENGINE_ROUTES, state_path, delivery_timeout=5.0, retry_in_background=False)
    outcomes = {"rejected": 0, "fired": 0, "debounced": 0}

    @PROPERTY_SETTINGS
    @given(event=EVENTS, level=LEVELS, message=MESSAGES, context=CONTEXTS)
    def check(event, level, message, context):
        arguments = context_arguments(context)  # `event=`, `self=`… as keyword arguments would clash
        before = snapshot(engine)
        previous = next((r for r in engine.active_events() if r.event == event), None) if event_ok(event) else None
        try:
            result = engine.raise_alert(event, level, message, **arguments)
        except ValueError as error:
            note(f"ValueError: {error}")
            assert not (level_ok(level) and event_ok(event)), f"valid input refused: {error}"
            assert snapshot(engine) == before, "a refused alert changed the state"
            outcomes["rejected"] += 1
            return
        assert level_ok(level) and event_ok(event), "invalid input accepted"
        parsed = Level.parse(level)
        assert isinstance(result, dict) and all(isinstance(ok, bool) for ok in result.values())
        (record,) = [r for r in engine.active_events() if r.event == event]
        assert_bounded(record)
        if previous is not None and previous.level >= parsed:
            assert result == {} and record.level is previous.level and record.seen == previous.seen + 1
            outcomes["debounced"] += 1
        else:
            assert record.level is parsed
            assert set(result) == {name for name in ENGINE_ROUTES[parsed.value] if name in channels}
            assert result.get("sink") is True and result.get("broken", False) is False
            if len(message) <= MAX_MESSAGE_LENGTH and not has_surrogates(message):
                assert record.message == message
            elif len(message) > MAX_MESSAGE_LENGTH:
                assert len(record.message) == MAX_MESSAGE_LENGTH and record.message.endswith("…")
            if len(arguments) > MAX_CONTEXT_ITEMS:
                assert len(record.context) == MAX_CONTEXT_ITEMS + 1 and "more items dropped" in record.context["…"]
            outcomes["fired"] += 1
        # The state file opens again (another connection, as the next CLI command would) with this record in it.
        store = StateStore(state_path)
        try:
            stored = {r.event: r for r in store.load_active()}
            assert stored[event].level is record.level and stored[event].message == record.message
            assert stored[event].context == record.context
            assert store.history(3)
        finally:
            store.close()

    try:
        check()
        for channel in channels.values():
            assert channel.problems == [], channel.problems[:3]
        final = sorted((r.event, r.level, r.message, json.dumps(r.context)) for r in engine.active_events())
    finally:
        engine.close()
    assert outcomes["rejected"] and outcomes["fired"], outcomes  # both sides of the property were exercised
    with Engine({}, ENGINE_ROUTES, state_path, retry_in_background=False) as reopened:
        assert sorted((r.event, r.level, r.message, json.dumps(r.context)) for r in reopened.active_events()) == final
        assert reopened.history(500)


# ---- (b) the push API ---------------------------------------------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(ANY_CHAR, max_size=30))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(ANY_CHAR, max_size=10), children,
                                                                      max_size=4),
    max_leaves=15,
)
PRINTABLE_NAMES = st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=30)
API_EVENTS = st.one_of(st.sampled_from(KNOWN_EVENTS), ANY_TEXT, st.text(min_size=1, max_size=20),
                       st.text(ANY_CHAR, min_size=MAX_EVENT_LENGTH - 2, max_size=MAX_EVENT_LENGTH + 2))
API_MESSAGES = st.one_of(ANY_TEXT, st.builds(lambda piece, count: piece * count,
                                             st.text(ANY_CHAR, min_size=1, max_size=4), st.integers(1, 10_000)))
ALERT_BODIES = st.fixed_dictionaries(
    {"event": st.one_of(API_EVENTS, API_EVENTS, JSON_VALUES),
     "level": st.one_of(LEVEL_TEXT, LEVEL_TEXT, ANY_TEXT, JSON_VALUES),
     "message": st.one_of(API_MESSAGES, API_MESSAGES, JSON_VALUES)},
    optional={"context": st.one_of(st.dictionaries(CONTEXT_KEYS, JSON_VALUES, max_size=8), JSON_VALUES),
              "extra": JSON_VALUES},
)
GOOD_ALERT_BODIES = st.fixed_dictionaries(
    {"event": st.one_of(st.sampled_from(KNOWN_EVENTS), PRINTABLE_NAMES), "level": LEVEL_TEXT,
     "message": API_MESSAGES},
    optional={"context": st.one_of(st.dictionaries(CONTEXT_KEYS, JSON_VALUES, max_size=8), st.just({}), st.none())},
)
AM_LABEL_KEYS = st.one_of(st.sampled_from(["alertname", "instance", "severity", "job", "event", "level", "message",
                                           "self", "source"]), ANY_TEXT)
AM_GOOD_ALERTS = st.fixed_dictionaries(
    {"labels": st.fixed_dictionaries({"alertname": PRINTABLE_NAMES},
                                     optional={"instance": PRINTABLE_NAMES, "severity": st.one_of(
                                         st.sampled_from(["critical", "page", "warning", "info", "none"]), ANY_TEXT),
                                               "job": JSON_VALUES, "event": JSON_VALUES, "message": ANY_TEXT})},
    optional={"status": st.sampled_from(["firing", "resolved"]),
              "annotations": st.dictionaries(st.sampled_from(["summary", "description"]), JSON_VALUES)},
)
AM_ALERTS = st.fixed_dictionaries(
    {"labels": st.one_of(st.dictionaries(AM_LABEL_KEYS, st.one_of(API_EVENTS, JSON_VALUES), max_size=6),
                         st.dictionaries(AM_LABEL_KEYS, API_EVENTS, max_size=6), JSON_VALUES)},
    optional={"status": st.one_of(st.sampled_from(["firing", "resolved"]), JSON_VALUES),
              "annotations": st.one_of(st.dictionaries(st.sampled_from(["summary", "description"]), JSON_VALUES),
                                       JSON_VALUES),
              "startsAt": JSON_VALUES, "fingerprint": JSON_VALUES},
)
AM_WELL_FORMED = st.fixed_dictionaries({"version": st.just("4"), "status": st.sampled_from(["firing", "resolved"]),
                                        "alerts": st.lists(AM_GOOD_ALERTS, max_size=4)})
AM_BODIES = st.one_of(
    st.fixed_dictionaries({"version": st.just("4"),
                           "alerts": st.lists(st.one_of(AM_GOOD_ALERTS, AM_GOOD_ALERTS, AM_ALERTS, JSON_VALUES),
                                             max_size=4)},
                          optional={"status": JSON_VALUES, "groupLabels": JSON_VALUES}),
    st.fixed_dictionaries({}, optional={"alerts": JSON_VALUES, "version": JSON_VALUES}),
    JSON_VALUES,
)


def _encode(value, ascii_only: bool) -> bytes:
    """JSON bytes as a client would send them (NaN/Infinity included; lone surrogates as \\uXXXX escapes)."""
    if not ascii_only:
        try:
            return json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return json.dumps(value).encode("ascii")


def json_body(values) -> st.SearchStrategy[bytes]:
    return st.builds(_encode, values, st.booleans())


CRAFTED_BODIES = st.one_of(
    st.binary(max_size=2000),  # raw random bytes
    st.builds(lambda depth, opener: opener * depth, st.integers(1, 200_000), st.sampled_from([b"[", b'{"a":'])),
    st.builds(lambda digits: b'{"event":"big","level":"info","message":"m","context":{"n":' + b"7" * digits + b"}}",
              st.integers(4000, 20_000)),
    st.builds(lambda extra: json.dumps({"event": "huge", "level": "info", "message": "x" * (MAX_BODY + extra)})
              .encode(), st.integers(0, 64 * 1024)),  # over the limit: 413
    st.sampled_from([b"", b"   ", b"null", b"[]", b'"x"', b"NaN", b"\xff\xfe{\x00}", b'{"event": "\\ud800"}',
                     b"\xef\xbb\xbf{}", b'{"event":"bom","level":"info","message":"m"}\x00']),
)


def parse_like_the_server(raw: bytes):
    """(ok, value): what json.loads makes of the body, as the server reads it."""
    if not raw.strip():
        return True, None
    try:
        return True, json.loads(raw)
    except (ValueError, RecursionError):
        return False, None


def alert_body_valid(body) -> bool:
    """README: event, level and message strings (valid ones; a message that says something), context an object if
    given."""
    return (isinstance(body, dict) and event_ok(body.get("event")) and level_ok(body.get("level"))
            and isinstance(body.get("message"), str) and body["message"].strip() != ""
            and (not body.get("context") or isinstance(body.get("context"), dict)))


def am_body_valid(body) -> bool:
    """A version 4 webhook the intake takes: `alerts` is a list, empty or with at least one object with `labels`
    (each other alert is refused alone)."""
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        return False
    alerts = body["alerts"]
    return not alerts or any(isinstance(item, dict) and isinstance(item.get("labels"), dict) for item in alerts)


class Api:
    def __init__(self, push: PushApi, engine: Engine):
        self.push, self.engine = push, engine
        self.base = f"http://127.0.0.1:{push.port}"
        self.statuses: dict[str, dict[int, int]] = {}

    def post(self, path: str, raw: bytes) -> requests.Response:
        response = requests.post(self.base + path, data=raw, timeout=HTTP_TIMEOUT,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        counts = self.statuses.setdefault(path, {})
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
        return response

    def assert_still_answering(self) -> None:
        response = requests.get(self.base + "/v1/status", timeout=HTTP_TIMEOUT,
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200 and response.json()["app"] == "tray-alerts"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    state_path = tmp_path_factory.mktemp("api") / "state.db"
    engine = Engine({"sink": Sink("sink"), "flaky": Flaky("flaky")}, {"info": ["sink"], "warning": ["sink"],
                    "error": ["sink", "flaky"], "critical": ["sink", "flaky"]}, state_path,
                    delivery_timeout=5.0, retry_in_background=False)
    push = PushApi(engine, TOKEN, port=0)
    push.start()
    yield Api(push, engine)
    push.stop()
    engine.close()
    with Engine({}, {}, state_path, retry_in_background=False) as reopened:  # the state it wrote still opens
        reopened.active_events()


def assert_error_reply(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/json")
    payload = response.json()
    assert isinstance(payload, dict) and set(payload) == {"error"} and isinstance(payload["error"], str)
    assert payload["error"]
    return payload["error"]


@PROPERTY_SETTINGS
@given(raw=st.one_of(json_body(GOOD_ALERT_BODIES), json_body(ALERT_BODIES), json_body(JSON_VALUES), CRAFTED_BODIES))
def test_post_alerts_answers_200_400_or_413_never_500(api, raw):
    response = api.post("/v1/alerts", raw)
    note(f"{response.status_code} {response.text[:300]}")
    assert response.status_code != 500, response.text
    if len(raw) > MAX_BODY:
        assert response.status_code == 413 and str(MAX_BODY) in assert_error_reply(response)
    else:
        parsed_ok, body = parse_like_the_server(raw)
        if parsed_ok and alert_body_valid(body):
            assert response.status_code == 200, response.text
            reply = response.json()
            assert reply["event"] == body["event"] and reply["status"] in ("fired", "escalated", "debounced")
            assert isinstance(reply["delivered"], dict) and isinstance(reply["details"], dict)
            assert body["event"] in {record.event for record in api.engine.active_events()}
        else:
            assert response.status_code == 400, response.text
            assert_error_reply(response)
    api.assert_still_answering()


@PROPERTY_SETTINGS
@given(raw=st.one_of(json_body(AM_WELL_FORMED), json_body(AM_BODIES), json_body(AM_BODIES), CRAFTED_BODIES))
def test_post_alertmanager_answers_200_or_400_never_500(api, raw):
    response = api.post("/v1/alertmanager", raw)
    note(f"{response.status_code} {response.text[:300]}")
    assert response.status_code != 500, response.text
    if len(raw) > MAX_BODY:
        assert response.status_code == 413
        assert_error_reply(response)
    else:
        parsed_ok, body = parse_like_the_server(raw)
        if parsed_ok and am_body_valid(body):
            assert response.status_code == 200, response.text
            reply = response.json()
            assert reply["raised"] + reply["cleared"] + reply["refused"] == len(body["alerts"])
        else:
            assert response.status_code == 400, response.text
            assert_error_reply(response)
    api.assert_still_answering()


def test_the_api_properties_saw_both_answers(api):
    """Runs after the two property tests in this module: both accepted and refused bodies were exercised."""
    for path in ("/v1/alerts", "/v1/alertmanager"):
        counts = api.statuses.get(path, {})
        if not counts:
            pytest.skip("the property tests did not run first (run the whole module)")
        assert counts.get(200, 0) >= 10 and counts.get(400, 0) >= 10, (path, counts)
        assert 500 not in counts


# ---- (c) settings files --------------------------------------------------------------------------------------

SETTINGS_PIECES = st.sampled_from([
    "[alerts]", "[routing]", "[reminders]", "[channel.x]", "[channel.log]", "[channel.email]", "[channel.hook]",
    "[monitor.m]", "[monitor.disk_root]", "[channel.]", "[monitor. ]", "[DEFAULT]", "[", "]", "[]", "[[x]]",
    "type = disk", "type = tcp", "type = webhook", "type = process", "type = memory", "type = slack",
    "url = http://127.0.0.1:9", "url = ftp://x", "port = 99", "port = 0", "warning = 5", "error = 1", "critical = x",
    "=", " = x", "key", "  indented continuation", "info = log", "critical = log, nope", "api_port = 70000",
    "delivery_timeout = 0", "log_level = loud", "state_dir =", "pattern = ([", "command = 'unclosed", "name = x",
    "enabled = maybe", "enabled = no", "headers = no colon", "headers = A: b", "security = tls", "host = h",
    "to = a@b", "max_per_minute = -1", "channels = log, ghost", "${", "${X:-", "${HOME}", "%(x)s", ":", "; comment",
    "# comment", "\r", "\t", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\ufeff", "\x1b[31m", "é", "\U0001f525",
])
SETTINGS_TEXT = st.one_of(
    st.text(ANY_CHAR.filter(lambda char: not "\ud800" <= char <= "\udfff"), max_size=300),
    st.lists(st.one_of(SETTINGS_PIECES, SETTINGS_PIECES, st.text(max_size=12)), max_size=40).map("\n".join),
    st.lists(st.one_of(SETTINGS_PIECES, st.text(max_size=6)), max_size=40).map("".join),
)


def test_arbitrary_settings_text_loads_or_raises_config_error(tmp_path):
    saved_secrets = list(redact_module._secrets)  # building channels registers secrets: keep them out of other tests
    old_cwd = os.getcwd()
    os.chdir(tmp_path)  # a `[channel.log] file = x` the text makes up lands here
    counts = {"ok": 0, "ConfigError": 0}
    try:
        @settings(PROPERTY_SETTINGS, max_examples=200)
        @given(text=SETTINGS_TEXT, as_bytes=st.booleans())
        def check(text, as_bytes):
            path = tmp_path / "settings.ini"
            if as_bytes:
                path.write_bytes(text.encode("utf-8"))
            else:
                path.write_text(text, encoding="utf-8", newline="")
            try:
                loaded = load_settings(path, {})
                build_channels(loaded)
            except ConfigError as error:
                message = str(error)
                assert message.startswith(str(path)) and message.isprintable(), repr(message)
                counts["ConfigError"] += 1
            else:
                counts["ok"] += 1

        check()

        @PROPERTY_SETTINGS
        @given(data=st.binary(max_size=600))
        def check_bytes(data):
            path = tmp_path / "raw.ini"
            path.write_bytes(data)
            try:
                load_settings(path, {})
            except ConfigError as error:
                assert str(error).startswith(str(path)) and str(error).isprintable()

        check_bytes()
    finally:
        os.chdir(old_cwd)
        redact_module._secrets[:] = saved_secrets
    assert counts["ok"] and counts["ConfigError"], counts
