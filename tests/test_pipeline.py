"""The per-channel stages and storm control as tables: ordering, snooze and mute holds (quiet channels exempt),
quiet hours, the storm cap and grouping, what storm control counts, and the summaries of what a cap held back."""
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tray_alerts.display import clock
from tray_alerts.model import Alert, Level, from_timestamp
from tray_alerts.pipeline import (DROP, GROUP, HOLD, HOLD_GROUP, HOLD_MUTE, HOLD_NONE, HOLD_QUIET, HOLD_RETRY,
                                  HOLD_SNOOZE, SEND_NOW, SUMMARISE, Conditions, Delivery, Verdict, counts_for_storm,
                                  holds, ordering, quiet, run_stages, storm, summarised_channels)
from tray_alerts.quiet_hours import QuietHours, QuietPolicy, parse_window
from tray_alerts.storm import (CAP_WINDOW, SUMMARY_EVENT, ChannelLimits, GateState, StormControl, StormDecision,
                               storm_verdict, summarise, summary_due)

INFO, WARNING, ERROR, CRITICAL = Level.INFO, Level.WARNING, Level.ERROR, Level.CRITICAL
NOW = 1_000_000.0


def alert(level=WARNING, event="disk"):
    return Alert(event, level, "m", at=from_timestamp(NOW))


def row(channel="slack", event="disk", recipient="", kind="firing", attempts=0, hold=HOLD_NONE, level=WARNING):
    return Delivery(1, channel, event, "ep1", kind, alert(level, event), recipient, attempts=attempts, hold=hold)


# ---- the row ---------------------------------------------------------------------------------------------------


def test_a_rows_key_is_its_channel_event_and_recipient():
    assert row("sms", "disk", "+4412").key == ("sms", "disk", "+4412")


@pytest.mark.parametrize("attempts, hold, kind, fresh", [
    (0, HOLD_NONE, "firing", True),
    (0, HOLD_SNOOZE, "firing", True),  # held by a snooze but never counted by storm control yet
    (0, HOLD_RETRY, "recovery", True),
    (1, HOLD_NONE, "firing", False),  # tried once: storm control counted it then
    (2, HOLD_RETRY, "firing", False),
    (0, HOLD_GROUP, "firing", False),  # grouped: counted when it was grouped
    (0, HOLD_NONE, "summary", False),  # a summary is storm control's own
])
def test_which_rows_storm_control_still_has_a_say_on(attempts, hold, kind, fresh):
    assert row(attempts=attempts, hold=hold, kind=kind).fresh is fresh


def test_a_new_row_is_fresh():
    assert Delivery(7, "slack", "disk", "ep", "firing", alert()).fresh


# ---- ordering --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ahead, waits", [
    (frozenset(), False),
    (frozenset({("slack", "disk", "")}), True),
    (frozenset({("slack", "cpu", ""), ("email", "disk", ""), ("slack", "disk", "+44")}), False),  # other keys
])
def test_a_row_waits_behind_an_older_row_of_its_key(ahead, waits):
    verdict = ordering(row(), Conditions(ahead=ahead), NOW)
    if waits:
        assert (verdict.action, verdict.until, verdict.hold) == (HOLD, None, HOLD_NONE)
        assert "queued behind" in verdict.reason
    else:
        assert verdict is None


# ---- holds -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("snoozed_until, mutes, expected", [
    (None, {}, None),
    (NOW + 100, {}, (NOW + 100, HOLD_SNOOZE)),
    (NOW, {}, None),  # a snooze ending now has ended
    (NOW - 5, {}, None),
    (0.0, {}, None),
    (None, {"disk": NOW + 200}, (NOW + 200, HOLD_MUTE)),
    (None, {"disk": NOW}, None),  # a mute ending now has ended
    (None, {"disk": NOW - 1}, None),
    (None, {"cpu": NOW + 200}, None),  # another event's mute
    (NOW + 100, {"disk": NOW + 200}, (NOW + 200, HOLD_MUTE)),  # whichever ends later holds it
    (NOW + 300, {"disk": NOW + 200}, (NOW + 300, HOLD_SNOOZE)),
    (NOW + 200, {"disk": NOW + 200}, (NOW + 200, HOLD_SNOOZE)),  # a tie: the snooze names it
    (NOW - 5, {"disk": NOW + 200}, (NOW + 200, HOLD_MUTE)),  # an ended snooze does not count
    (NOW + 100, {"disk": NOW - 5}, (NOW + 100, HOLD_SNOOZE)),  # nor an ended mute
])
def test_a_snooze_or_a_mute_holds_a_row_until_the_later_end(snoozed_until, mutes, expected):
    verdict = holds(row(), Conditions(snoozed_until=snoozed_until, mutes=mutes), NOW)
    if expected is None:
        assert verdict is None
    else:
        assert (verdict.action, verdict.until, verdict.hold) == (HOLD, *expected)
        why = "muted" if expected[1] == HOLD_MUTE else "snoozed"
        assert verdict.reason == f"held while {why} until {clock(from_timestamp(expected[0]))}"


def test_quiet_channels_are_held_by_neither_snooze_nor_mute():
    conditions = Conditions(snoozed_until=NOW + 100, mutes={"disk": NOW + 200}, quiet=frozenset({"log"}))
    assert holds(row("log"), conditions, NOW) is None
    assert holds(row("slack"), conditions, NOW).until == NOW + 200


# ---- the storm stage -------------------------------------------------------------------------------------------


def test_the_storm_stage_passes_channels_without_limits_and_rows_already_counted():
    full = GateState(sent=(NOW - 2, NOW - 1))
    conditions = Conditions(limits={"desktop": ChannelLimits(max_per_minute=2)}, gates={"desktop": full})
    assert storm(row("slack"), conditions, NOW) is None  # no limits for slack
    assert storm(row("desktop", attempts=1), conditions, NOW) is None  # a retry is not counted again
    assert storm(row("desktop", kind="summary"), conditions, NOW) is None
    verdict = storm(row("desktop"), conditions, NOW)
    assert verdict.action == DROP and verdict.until is None and "held back by storm control" in verdict.reason


def test_the_storm_stage_sends_under_the_cap_and_groups_a_pile_up():
    limits = {"desktop": ChannelLimits(max_per_minute=2), "slack": ChannelLimits(group_after=2, group_window=30)}
    assert storm(row("desktop"), Conditions(limits=limits), NOW) is None  # no gate yet: an empty one
    piled = Conditions(limits=limits, gates={"slack": GateState(sent=(NOW - 2, NOW - 1))})
    verdict = storm(row("slack"), piled, NOW)
    assert (verdict.action, verdict.until, verdict.hold) == (GROUP, NOW + 30, HOLD_GROUP)
    assert "grouped with others" in verdict.reason


# ---- quiet hours -----------------------------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT_23 = datetime(2026, 6, 10, 23, 0, tzinfo=BERLIN).timestamp()
SEVEN = datetime(2026, 6, 11, 7, 0, tzinfo=BERLIN).timestamp()
QUIET = Conditions(quiet_hours=QuietPolicy({"desktop": QuietHours(parse_window("22:00-07:00"), CRITICAL)}, BERLIN))


OVERTAKEN = ("dropped as overtaken: the alert recovered or went out at a higher level during quiet hours (it is in"
             " the history)")


def quiet_row(kind="firing", level=WARNING, hold=HOLD_NONE, channel="desktop", id_=1, resolved=False):
    the_alert = Alert("disk", level, "m", at=from_timestamp(NIGHT_23), resolved=resolved)
    return Delivery(id_, channel, "disk", "ep1", kind, the_alert, hold=hold)


@pytest.mark.parametrize("the_row, now, conditions, expected", [
    (quiet_row(), NIGHT_23, QUIET, (HOLD, SEVEN, HOLD_QUIET, "held for quiet hours until 07:00")),
    (quiet_row(level=ERROR), NIGHT_23, QUIET, (HOLD, SEVEN, HOLD_QUIET, "held for quiet hours until 07:00")),
    (quiet_row(kind="escalation"), NIGHT_23, QUIET, (HOLD, SEVEN, HOLD_QUIET, "held for quiet hours until 07:00")),
    (quiet_row(kind="summary"), NIGHT_23, QUIET, (HOLD, SEVEN, HOLD_QUIET, "held for quiet hours until 07:00")),
    (quiet_row(level=CRITICAL), NIGHT_23, QUIET, None),  # quiet_allows = critical
    (quiet_row(kind="recovery", resolved=True), NIGHT_23, QUIET, None),  # a recovery of what was told
    (quiet_row(kind="reminder"), NIGHT_23, QUIET, (DROP, None, HOLD_QUIET, "reminder skipped: quiet hours until 07:00")),
    (quiet_row(channel="slack"), NIGHT_23, QUIET, None),  # a channel without quiet hours
    (quiet_row(), SEVEN, QUIET, None),  # the window is over
    (quiet_row(hold=HOLD_QUIET), SEVEN, QUIET, None),  # ... and what it held goes out
    (quiet_row(hold=HOLD_QUIET), SEVEN, replace(QUIET, summarised=frozenset({"desktop"})),
     (SUMMARISE, None, HOLD_QUIET, "held for quiet hours: sent in one summary with the others")),
    (quiet_row(), SEVEN, replace(QUIET, summarised=frozenset({"desktop"})), None),  # never held: not summarised
    (quiet_row(hold=HOLD_QUIET), SEVEN, replace(QUIET, overtaken=frozenset({1})),
     (DROP, None, HOLD_QUIET, OVERTAKEN)),
    (quiet_row(kind="recovery", resolved=True), SEVEN, replace(QUIET, overtaken=frozenset({1})),
     (DROP, None, HOLD_QUIET, OVERTAKEN)),
    (quiet_row(), NIGHT_23, Conditions(), None),  # no quiet hours at all
])
def test_quiet_hours_hold_until_the_window_ends(the_row, now, conditions, expected):
    verdict = quiet(the_row, conditions, now)
    assert (verdict if verdict is None else (verdict.action, verdict.until, verdict.hold, verdict.reason)) == expected


@pytest.mark.parametrize("the_row, now, waits", [
    (quiet_row(level=CRITICAL), NIGHT_23, False),  # let through: it does not wait behind what quiet hours hold
    (quiet_row(level=ERROR), NIGHT_23, True),
    (quiet_row(level=CRITICAL, kind="recovery", resolved=True), NIGHT_23, True),  # a recovery stays behind
    (quiet_row(level=CRITICAL), SEVEN, True),  # after the window: in order again
    (quiet_row(level=CRITICAL, channel="slack"), NIGHT_23, True),  # no quiet hours there
])
def test_a_level_quiet_hours_let_through_does_not_queue_behind_what_they_hold(the_row, now, waits):
    conditions = replace(QUIET, ahead=frozenset({the_row.key}))
    assert (ordering(the_row, conditions, now) is not None) is waits


@pytest.mark.parametrize("held, limits, overtaken, now, summarised", [
    (5, {}, frozenset(), SEVEN, frozenset()),  # five go out one by one
    (6, {}, frozenset(), SEVEN, frozenset({"desktop"})),  # more than five: one summary
    (6, {}, frozenset(), NIGHT_23, frozenset()),  # still quiet: nothing goes out yet
    (6, {}, frozenset({1, 2}), SEVEN, frozenset()),  # what recovered does not count
    (4, {"desktop": ChannelLimits(group_after=3)}, frozenset(), SEVEN, frozenset({"desktop"})),
    (4, {"desktop": ChannelLimits(max_per_minute=4)}, frozenset(), SEVEN, frozenset()),
])
def test_more_rows_held_than_the_channels_threshold_are_summarised(held, limits, overtaken, now, summarised):
    rows = [quiet_row(hold=HOLD_QUIET, id_=n) for n in range(1, held + 1)] + [quiet_row(id_=99), quiet_row(
        kind="summary", hold=HOLD_QUIET, id_=98)]  # one never held, one summary: neither counts
    conditions = replace(QUIET, limits=limits, overtaken=overtaken)
    assert summarised_channels(rows, conditions, now) == summarised


# ---- what storm control counts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("the_row, verdict, counted", [
    (row(), SEND_NOW, True),
    (row(), Verdict(DROP, "cap"), True),
    (row(), Verdict(GROUP, "grouped", NOW + 30, HOLD_GROUP), True),
    (row(), Verdict(HOLD, "snoozed", NOW + 30, HOLD_SNOOZE), False),  # held: counted when it is finally sent
    (row(), Verdict(HOLD, "queued behind"), False),
    (row(attempts=1), SEND_NOW, False),  # a retry was counted on its first try
    (row(hold=HOLD_GROUP), SEND_NOW, False),  # a grouped row going out was counted when grouped
    (row(kind="summary"), SEND_NOW, False),
    (row(), Verdict(HOLD, "quiet", NOW + 30, HOLD_QUIET), False),  # held for quiet hours: counted when sent
    (row(), Verdict(DROP, "reminder skipped", None, HOLD_QUIET), False),  # quiet hours' drops are not the cap's
    (row(hold=HOLD_QUIET), SEND_NOW, True),  # what quiet hours held counts when it goes out
])
def test_storm_control_counts_fresh_rows_sent_grouped_or_dropped(the_row, verdict, counted):
    assert counts_for_storm(the_row, verdict) is counted


# ---- the stages in order ---------------------------------------------------------------------------------------


def test_the_first_stage_with_a_verdict_decides():
    limits = {"slack": ChannelLimits(max_per_minute=1)}
    full = {"slack": GateState(sent=(NOW - 1,))}
    behind = frozenset({("slack", "disk", "")})
    everything = Conditions(snoozed_until=NOW + 100, limits=limits, gates=full, ahead=behind)
    assert "queued behind" in run_stages(row(), everything, NOW).reason  # ordering first
    assert run_stages(row(), replace(everything, ahead=frozenset()), NOW).hold == HOLD_SNOOZE  # then holds
    night = replace(QUIET, limits={"desktop": ChannelLimits(max_per_minute=1)}, gates={"desktop": full["slack"]})
    assert run_stages(quiet_row(), night, NIGHT_23).hold == HOLD_QUIET  # then quiet hours
    assert run_stages(row(), Conditions(limits=limits, gates=full), NOW).action == DROP  # then storm control
    assert run_stages(row(), Conditions(), NOW) is SEND_NOW


def test_custom_stages_run_in_the_order_given():
    said = []

    def first(r, c, n):
        said.append("first")
        return None

    def second(r, c, n):
        said.append("second")
        return Verdict(DROP, "second says no")

    def third(r, c, n):  # never reached
        said.append("third")
        return SEND_NOW

    assert run_stages(row(), Conditions(), NOW, (first, second, third)).reason == "second says no"
    assert said == ["first", "second"]
    assert run_stages(row(), Conditions(), NOW, ()) is SEND_NOW


# ---- storm control: the cap ------------------------------------------------------------------------------------


CAP2 = ChannelLimits(max_per_minute=2)


def verdict_of(limit, gate, now, level=WARNING):
    return storm_verdict(limit, gate, alert(level), now)


def test_under_the_cap_alerts_are_sent_and_remembered():
    decision, gate = verdict_of(CAP2, GateState(), 100.0)
    assert decision == StormDecision("send") and gate == GateState(sent=(100.0,))
    decision, gate = verdict_of(CAP2, gate, 101.0)
    assert decision.action == "send" and gate.sent == (100.0, 101.0)


def test_beyond_the_cap_alerts_are_held_back_for_one_summary_a_minute_after_the_first():
    decision, gate = verdict_of(CAP2, GateState(sent=(100.0, 101.0)), 102.0, ERROR)
    assert decision.action == "suppress" and decision.until is None
    assert "held back by storm control (more than 2 a minute)" in decision.reason
    assert gate == GateState(sent=(100.0, 101.0), held_back=1, worst=ERROR, summary_at=160.0, held_events=("disk",))


@pytest.mark.parametrize("limit", [CAP2, ChannelLimits(group_after=1), ChannelLimits(max_per_minute=1, group_after=1)])
def test_a_critical_is_never_held_back_nor_grouped_and_counts_as_sent(limit):
    gate = GateState(sent=(100.0, 101.0), held_back=3, worst=ERROR, summary_at=160.0, group_until=131.0)
    decision, after = verdict_of(limit, gate, 102.0, CRITICAL)
    assert decision == StormDecision("send") and after == replace(gate, sent=(100.0, 101.0, 102.0))


@pytest.mark.parametrize("level", [INFO, WARNING, ERROR, CRITICAL])
@pytest.mark.parametrize("limit", [CAP2, ChannelLimits(group_after=1)])
def test_a_recovery_is_never_held_nor_counted(limit, level):
    gate = GateState(sent=(100.0, 101.0), held_back=1, worst=ERROR, summary_at=160.0, group_until=131.0)
    recovery = Alert("disk", level, "back", at=from_timestamp(NOW), resolved=True)
    assert storm_verdict(limit, gate, recovery, 102.0) == (StormDecision("send"), gate)


def test_the_cap_remembers_each_event_it_held_back_once_in_order():
    gate = GateState(sent=(100.0, 101.0))
    for event in ["disk", "api", "disk", "backup"]:
        _, gate = storm_verdict(CAP2, gate, alert(WARNING, event), 102.0)
    assert gate.held_back == 4 and gate.held_events == ("disk", "api", "backup")


@pytest.mark.parametrize("worst, level, now_worst", [(ERROR, WARNING, ERROR), (WARNING, ERROR, ERROR),
                                                     (ERROR, ERROR, ERROR), (INFO, WARNING, WARNING)])
def test_what_the_cap_holds_back_keeps_the_worst_level_and_the_first_summary_time(worst, level, now_worst):
    gate = GateState(sent=(100.0, 101.0), held_back=3, worst=worst, summary_at=160.0)
    decision, after = verdict_of(CAP2, gate, 130.0, level)
    assert decision.action == "suppress"
    assert after == GateState(sent=(100.0, 101.0), held_back=4, worst=now_worst, summary_at=160.0,
                              held_events=("disk",))


@pytest.mark.parametrize("now, action, sent", [
    (159.9, "suppress", (100.0, 101.0)),
    (160.0, "send", (101.0, 160.0)),  # the first send is a minute old: it no longer counts
    (161.5, "send", (161.5,)),
])
def test_the_cap_counts_over_the_last_minute(now, action, sent):
    decision, gate = verdict_of(CAP2, GateState(sent=(100.0, 101.0)), now)
    assert decision.action == action and gate.sent == sent


def test_the_cap_window_is_a_minute():
    assert CAP_WINDOW == 60.0


def test_a_cap_of_one_a_minute_counts_one_send():
    decision, gate = verdict_of(ChannelLimits(max_per_minute=1), GateState(sent=(100.0,)), 100.5)
    assert decision.action == "suppress" and gate.summary_at == 160.0


# ---- storm control: grouping -----------------------------------------------------------------------------------


GROUP2 = ChannelLimits(group_after=2, group_window=30)


@pytest.mark.parametrize("gate, now, action, until, after", [
    (GateState(), 100.0, "send", None, GateState(sent=(100.0,))),
    (GateState(sent=(100.0,)), 101.0, "send", None, GateState(sent=(100.0, 101.0))),
    (GateState(sent=(100.0, 101.0)), 102.0, "group", 132.0, GateState(sent=(100.0, 101.0), group_until=132.0)),
    # while a group is open, everything joins it, however few were sent
    (GateState(group_until=132.0), 120.0, "group", 132.0, GateState(group_until=132.0)),
    # the group went out at its time: counting starts again (the two sends are 30 s old)
    (GateState(sent=(100.0, 101.0), group_until=132.0), 132.0, "send", None, GateState(sent=(132.0,),
                                                                                        group_until=132.0)),
    # ...but a pile-up at that moment opens a new group from now
    (GateState(sent=(110.0, 120.0), group_until=132.0), 132.0, "group", 162.0,
     GateState(sent=(110.0, 120.0), group_until=162.0)),
    (GateState(sent=(100.0, 105.0)), 130.0, "send", None, GateState(sent=(105.0, 130.0))),  # 30 s old: gone
])
def test_what_piles_up_within_the_window_is_grouped(gate, now, action, until, after):
    decision, gate_after = verdict_of(GROUP2, gate, now)
    assert (decision.action, decision.until) == (action, until) and gate_after == after
    if action == "group":
        assert "grouped with others" in decision.reason


def test_grouping_counts_only_the_group_window_even_when_the_cap_keeps_a_minute():
    both = ChannelLimits(max_per_minute=10, group_after=2, group_window=30)
    decision, gate = verdict_of(both, GateState(sent=(100.0, 105.0)), 130.0)
    assert decision.action == "send" and gate.sent == (100.0, 105.0, 130.0)  # the cap still counts both
    decision, _ = verdict_of(both, GateState(sent=(100.0, 105.0)), 129.0)
    assert decision == StormDecision("group", decision.reason, 159.0)


def test_with_both_limits_the_cap_counts_a_whole_minute():
    both = ChannelLimits(max_per_minute=2, group_after=5, group_window=10)
    decision, gate = verdict_of(both, GateState(sent=(100.0, 101.0)), 140.0)
    assert decision.action == "suppress" and gate.summary_at == 160.0


def test_grouping_alone_never_holds_back():
    decision, gate = verdict_of(ChannelLimits(group_after=1), GateState(sent=(100.0,)), 101.0)
    assert decision.action == "group" and decision.until == 131.0  # the default window is 30 s
    assert gate.held_back == 0 and gate.summary_at is None


@pytest.mark.parametrize("limit, on", [(ChannelLimits(), False), (ChannelLimits(max_per_minute=1), True),
                                       (ChannelLimits(group_after=1), True),
                                       (ChannelLimits(max_per_minute=3, group_after=2), True)])
def test_limits_are_on_when_either_is_set(limit, on):
    assert bool(limit) is on


# ---- summaries -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gate, now, due", [
    (GateState(), 1000.0, False),
    (GateState(held_back=0, summary_at=160.0), 1000.0, False),
    (GateState(held_back=2, summary_at=None), 1000.0, False),
    (GateState(held_back=2, summary_at=160.0), 159.0, False),
    (GateState(held_back=2, summary_at=160.0), 160.0, True),  # exactly on time
    (GateState(held_back=1, summary_at=160.0), 161.0, True),
])
def test_a_summary_is_due_a_minute_after_the_first_send_when_something_was_held_back(gate, now, due):
    assert summary_due(gate, now) is due


TWELVE = ("disk_root", "api", "backup", *(f"check{i}" for i in range(9)))


@pytest.mark.parametrize("held_back, events, worst, level, message", [
    (1, ("disk",), WARNING, WARNING, "1 more alert: disk — open the tray"),
    (3, ("disk", "api"), ERROR, ERROR, "3 more alerts: disk and api — open the tray"),
    (3, ("disk", "api", "backup"), ERROR, ERROR, "3 more alerts: disk, api and backup — open the tray"),
    (37, TWELVE, ERROR, ERROR, "37 more alerts: disk_root, api, backup and 9 more — open the tray"),
    (2, ("a",), None, INFO, "2 more alerts: a — open the tray"),
])
def test_the_summary_is_at_the_worst_level_held_back_names_the_first_events_and_resets_the_gate(
        held_back, events, worst, level, message):
    gate = GateState(sent=(100.0, 101.0), held_back=held_back, worst=worst, summary_at=160.0, group_until=50.0,
                     held_events=events)
    summary, after = summarise(gate, 160.0)
    assert (summary.event, summary.level, summary.message) == (SUMMARY_EVENT, level, message)
    assert summary.context == {"events": ", ".join(events)}
    assert summary.at == from_timestamp(160.0) and not summary.resolved
    assert after == GateState(sent=(100.0, 101.0, 160.0), held_back=0, worst=None, summary_at=None, group_until=50.0)


# ---- StormControl: the gates between calls ---------------------------------------------------------------------


def test_only_channels_with_limits_get_a_gate():
    control = StormControl({"desktop": CAP2, "slack": ChannelLimits(), "email": GROUP2})
    assert control.limits == {"desktop": CAP2, "email": GROUP2}
    assert control.gates() == {"desktop": GateState(), "email": GateState()}
    assert control.stats == {"sent": 0, "held_back": 0, "summaries": 0, "grouped": 0}
    assert control.decide("slack", alert(), NOW) == StormDecision("send")  # no limits: always sent, not counted
    assert control.stats["sent"] == 0 and "slack" not in control.gates()


def test_storm_control_keeps_each_gate_and_counts_every_decision():
    control = StormControl({"desktop": ChannelLimits(max_per_minute=1), "slack": ChannelLimits(group_after=1)})
    actions = [control.decide("desktop", alert(level), 100.0 + i).action
               for i, level in enumerate([WARNING, INFO, CRITICAL, ERROR])]
    assert actions == ["send", "suppress", "send", "suppress"]  # a critical goes through the cap
    assert [control.decide("slack", alert(), 100.0 + i).action for i in range(3)] == ["send", "group", "group"]
    assert control.stats == {"sent": 3, "held_back": 2, "summaries": 0, "grouped": 2}
    assert control.gates()["desktop"] == GateState(sent=(100.0, 102.0), held_back=2, worst=ERROR, summary_at=160.0,
                                                   held_events=("disk",))
    assert control.gates()["slack"].group_until == 131.0


def test_the_next_summary_is_the_earliest_one_waiting():
    control = StormControl({"desktop": ChannelLimits(max_per_minute=1), "popup": ChannelLimits(max_per_minute=1),
                            "slack": ChannelLimits(group_after=1)})
    assert control.next_summary_at() is None
    control.decide("slack", alert(), 90.0)
    control.decide("slack", alert(), 91.0)  # grouped: no summary for that
    assert control.next_summary_at() is None
    control.decide("popup", alert(), 110.0)
    control.decide("desktop", alert(), 100.0)
    assert control.next_summary_at() is None  # sent, nothing held back yet
    control.decide("popup", alert(), 111.0)
    control.decide("desktop", alert(), 101.0)
    assert control.next_summary_at() == 160.0


def test_summaries_are_taken_when_due_or_all_at_once_on_shutdown():
    control = StormControl({"desktop": ChannelLimits(max_per_minute=1), "popup": ChannelLimits(max_per_minute=1),
                            "idle": ChannelLimits(max_per_minute=1)})
    for channel, start in (("desktop", 100.0), ("popup", 130.0)):
        for i, (level, event) in enumerate([(INFO, "a"), (ERROR, "b"), (WARNING, "c")]):
            control.decide(channel, alert(level, event), start + i)
    assert control.take_summaries(159.0) == {}
    taken = control.take_summaries(160.0)
    assert list(taken) == ["desktop"]  # the popup's is not due until 190
    assert (taken["desktop"].level, taken["desktop"].message) == (ERROR, "2 more alerts: b and c — open the tray")
    assert control.stats["summaries"] == 1
    assert control.take_summaries(160.0) == {}  # taken once
    assert control.next_summary_at() == 190.0
    assert list(control.take_summaries(170.0, all_pending=True)) == ["popup"]  # shutdown: everything waiting
    assert control.stats["summaries"] == 2
    assert control.take_summaries(10_000.0, all_pending=True) == {}  # nothing held back: no empty summary
    assert control.gates()["desktop"].held_back == 0 and control.next_summary_at() is None


def test_after_a_summary_the_cap_counts_it_as_a_send():
    control = StormControl({"desktop": ChannelLimits(max_per_minute=1)})
    control.decide("desktop", alert(), 100.0)
    control.decide("desktop", alert(), 101.0)
    control.take_summaries(160.0)
    assert control.decide("desktop", alert(), 170.0).action == "suppress"  # the summary at 160 used the minute
    assert control.decide("desktop", alert(), 220.0).action == "send"
