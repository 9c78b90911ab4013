"""The lifecycle as tables: what a raise, clear or reminder does to an event's stored state, and who hears of it.

Routes here are deliberately not nested (no level's route contains another's), so an escalation that forgets
who was told before, or a reminder sent to the wrong channels, shows."""
from dataclasses import fields, replace

import pytest

from tray_alerts.lifecycle import (ACKNOWLEDGED, ALREADY_ACKNOWLEDGED, CLEARED, DEBOUNCED, ESCALATED, ESCALATION,
                                   FIRED, FIRING, NOT_ACTIVE, NOT_DUE, RECOVERY, REINHIBITED, RELEASED, REMINDED,
                                   REMINDER, Acknowledge, ActiveEvent, Clear, Policy, Raise, Release, Remind,
                                   Transition, decide, due_reminders, inhibitor, reminder_due)
from tray_alerts.model import Level, from_timestamp
from tray_alerts.reminders import ReminderPolicy
from tray_alerts.routing import Routing

INFO, WARNING, ERROR, CRITICAL = Level.INFO, Level.WARNING, Level.ERROR, Level.CRITICAL

# disjoint per level: nothing is heard "by accident" through a lower level's route
ROUTES = Routing({INFO: ["log"], WARNING: ["slack"], ERROR: ["email", "desktop"], CRITICAL: ["sms"]})
EVERYONE = frozenset({"log", "slack", "email", "desktop", "sms"})
POLICY = Policy(ROUTES.channels_for, EVERYONE)
T0 = 1_000_000.0


def fired(level=WARNING, at=T0, message="disk at 91%", context=None, episode="ep1", policy=POLICY):
    """The stored state after a first raise at `at`."""
    return decide(None, Raise("disk", level, message, context or {"mount": "/"}), at, policy, episode).after


def state(record: ActiveEvent) -> dict:
    """Every field of a stored state (ActiveEvent compares by identity)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def channels(transition: Transition) -> list[str]:
    return [notice.channel for notice in transition.notices]


def kinds(transition: Transition) -> set[str]:
    return {notice.kind for notice in transition.notices}


# ---- raise -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level, route", [(INFO, ["log"]), (WARNING, ["slack"]), (ERROR, ["email", "desktop"]),
                                          (CRITICAL, ["sms"])])
def test_a_first_raise_fires_to_its_levels_route_and_starts_an_episode(level, route):
    transition = decide(None, Raise("disk", level, "disk at 91%", {"mount": "/"}), T0, POLICY, "ep1")
    assert transition.kind == FIRED and transition.before is None and transition.changes_state
    after = transition.after
    assert (after.event, after.level, after.message, dict(after.context)) == ("disk", level, "disk at 91%",
                                                                               {"mount": "/"})
    assert (after.since, after.at, after.seen, after.last_seen, after.reminded_at) == (T0, T0, 1, T0, 0.0)
    assert after.told == frozenset(route) and after.episode == "ep1"
    assert channels(transition) == route and kinds(transition) == {FIRING}
    for notice in transition.notices:
        alert = notice.alert
        assert (alert.event, alert.level, alert.message, alert.context) == ("disk", level, "disk at 91%",
                                                                             {"mount": "/"})
        assert alert.at == from_timestamp(T0) and alert.episode == "ep1"
        assert not alert.resolved and not alert.reminder and alert.firing_for is None


@pytest.mark.parametrize("stored, raised", [(WARNING, WARNING), (ERROR, WARNING), (CRITICAL, INFO),
                                            (ERROR, ERROR)])
def test_a_repeat_at_the_same_or_a_lower_level_is_debounced_counted_and_tells_nobody(stored, raised):
    current = fired(stored)
    transition = decide(current, Raise("disk", raised, "disk at 95%", {"mount": "/var"}), T0 + 30, POLICY, "ep2")
    assert transition.kind == DEBOUNCED and transition.notices == () and not transition.changes_state
    assert transition.before is current
    # only the count and the time last seen move: the firing stays the one that was sent
    assert state(transition.after) == state(replace(current, seen=2, last_seen=T0 + 30))
    assert transition.after.message == "disk at 91%" and transition.after.episode == "ep1"


def test_repeats_keep_counting():
    current = fired()
    for n in range(2, 6):
        current = decide(current, Raise("disk", WARNING, "again"), T0 + n, POLICY).after
    assert (current.seen, current.last_seen, current.at) == (5, T0 + 5, T0)


def test_an_event_that_fired_once_has_been_seen_once():
    record = ActiveEvent("disk", WARNING, "m", {}, since=T0, at=T0)
    assert decide(record, Raise("disk", WARNING, "m"), T0 + 1, POLICY).after.seen == 2


@pytest.mark.parametrize("stored, raised, heard, told", [
    (WARNING, ERROR, ["email", "desktop"], {"slack", "email", "desktop"}),
    (WARNING, CRITICAL, ["sms"], {"slack", "sms"}),
    (INFO, WARNING, ["slack"], {"log", "slack"}),
    (ERROR, CRITICAL, ["sms"], {"email", "desktop", "sms"}),
])
def test_an_escalation_tells_the_new_route_and_keeps_everyone_told_before(stored, raised, heard, told):
    current = fired(stored)
    transition = decide(current, Raise("disk", raised, "disk at 99%", {"mount": "/var"}), T0 + 60, POLICY, "new")
    assert transition.kind == ESCALATED and transition.before is current and transition.changes_state
    assert channels(transition) == heard and kinds(transition) == {ESCALATION}
    after = transition.after
    assert after.told == frozenset(told)  # the union: a recovery must reach the first route too
    assert (after.level, after.message, dict(after.context)) == (raised, "disk at 99%", {"mount": "/var"})
    assert (after.since, after.at, after.seen, after.last_seen) == (T0, T0 + 60, 2, T0 + 60)
    assert after.episode == "ep1"  # the same episode: no new one for an escalation
    alert = transition.notices[0].alert
    assert (alert.level, alert.message, alert.at, alert.episode) == (raised, "disk at 99%", from_timestamp(T0 + 60),
                                                                     "ep1")


def test_an_escalation_keeps_when_it_was_last_reminded():
    current = replace(fired(WARNING), reminded_at=T0 + 100)
    after = decide(current, Raise("disk", ERROR, "worse"), T0 + 200, POLICY).after
    assert after.reminded_at == T0 + 100 and after.since == T0


def test_a_route_to_nobody_fires_silently_and_tells_nobody():
    quiet = Policy(lambda event, level: (), EVERYONE)
    transition = decide(None, Raise("disk", WARNING, "m"), T0, quiet, "ep")
    assert transition.kind == FIRED and transition.notices == () and transition.after.told == frozenset()


# ---- clear -----------------------------------------------------------------------------------------------------


def test_a_clear_of_nothing_active_is_not_active_and_tells_nobody():
    transition = decide(None, Clear("disk", "fine"), T0, POLICY)
    assert (transition.kind, transition.before, transition.after, transition.notices) == (NOT_ACTIVE, None, None, ())
    assert not transition.changes_state


def test_a_clear_sends_one_recovery_to_everyone_told_with_how_long_it_fired():
    current = decide(fired(WARNING), Raise("disk", CRITICAL, "disk full", {"mount": "/var"}), T0 + 600, POLICY).after
    transition = decide(current, Clear("disk", "disk at 40%", {"used": "40%"}), T0 + 3600, POLICY)
    assert transition.kind == CLEARED and transition.before is current and transition.after is None
    assert transition.changes_state
    assert channels(transition) == ["slack", "sms"] and kinds(transition) == {RECOVERY}  # sorted, once each
    alert = transition.notices[0].alert
    assert alert.resolved and not alert.reminder
    assert (alert.event, alert.level, alert.message, alert.context) == ("disk", CRITICAL, "disk at 40%",
                                                                         {"used": "40%"})  # what recovered, now
    assert alert.at == from_timestamp(T0 + 3600) and alert.episode == "ep1" and alert.since == from_timestamp(T0)
    assert alert.firing_for == 3600  # since the first firing, not since the escalation


def test_a_recovery_never_carries_the_firings_stale_readings():
    current = fired(context={"age": "45 s"})
    alert = decide(current, Clear("disk"), T0 + 60, POLICY).notices[0].alert
    assert alert.context == {} and alert.message == "recovered"


def test_every_notice_of_an_episode_says_when_it_began():
    current = fired(WARNING)
    escalated = decide(current, Raise("disk", CRITICAL, "disk full"), T0 + 600, POLICY)
    reminded = decide(escalated.after, Remind("disk"), T0 + 4000, remind_policy(60))
    assert {n.alert.since for t in (escalated, reminded) for n in t.notices} == {from_timestamp(T0)}
    assert {n.alert.episode for t in (escalated, reminded) for n in t.notices} == {"ep1"}


def test_a_recovery_goes_only_to_channels_told_that_still_exist():
    current = replace(fired(), told=frozenset({"slack", "sms", "email"}))
    fewer = Policy(ROUTES.channels_for, frozenset({"slack", "email", "log"}))
    assert channels(decide(current, Clear("disk"), T0 + 5, fewer)) == ["email", "slack"]


def test_a_clear_default_message_is_recovered():
    assert decide(fired(), Clear("disk"), T0 + 1, POLICY).notices[0].alert.message == "recovered"


# ---- reminders -------------------------------------------------------------------------------------------------


def remind_policy(every, present=EVERYONE):
    return Policy(ROUTES.channels_for, present, lambda event, level: every)


@pytest.mark.parametrize("every, at, reminded_at, now, due", [
    (None, T0, 0.0, T0 + 10_000, False),  # reminders off
    (0, T0, 0.0, T0 + 10_000, False),  # an interval of 0 is off too
    (60, T0, 0.0, T0 + 59, False),
    (60, T0, 0.0, T0 + 60, True),  # exactly at the interval
    (60, T0, 0.0, T0 + 61, True),
    (60, T0, T0 + 100, T0 + 159, False),  # counted from the last reminder...
    (60, T0, T0 + 100, T0 + 160, True),
    (60, T0 + 200, T0 + 100, T0 + 259, False),  # ...or the last firing or escalation, whichever is later
    (60, T0 + 200, T0 + 100, T0 + 260, True),
])
def test_a_reminder_is_due_exactly_at_the_interval_after_the_latest_firing_or_reminder(every, at, reminded_at, now,
                                                                                       due):
    current = ActiveEvent("disk", WARNING, "m", {}, since=T0, at=at, reminded_at=reminded_at, told=frozenset({"slack"}))
    assert reminder_due(current, now, remind_policy(every)) is due
    assert decide(current, Remind("disk"), now, remind_policy(every)).kind == (REMINDED if due else NOT_DUE)


def test_the_interval_is_looked_up_for_the_event_and_its_current_level():
    asked = []

    def every(event, level):
        asked.append((event, level))
        return 60

    current = decide(fired(WARNING), Raise("disk", ERROR, "worse"), T0 + 10, POLICY).after
    assert reminder_due(current, T0 + 70, Policy(ROUTES.channels_for, EVERYONE, every))
    assert asked == [("disk", ERROR)]


def test_a_due_reminder_goes_to_the_channels_told_that_still_exist_and_is_noted():
    current = replace(fired(WARNING), told=frozenset({"slack", "sms", "email"}))
    policy = remind_policy(600, present=frozenset({"slack", "email", "log"}))  # sms is gone; log was never told
    transition = decide(current, Remind("disk"), T0 + 600, policy)
    assert transition.kind == REMINDED and transition.before is current and transition.changes_state
    assert state(transition.after) == state(replace(current, reminded_at=T0 + 600))
    assert channels(transition) == ["email", "slack"] and kinds(transition) == {REMINDER}
    alert = transition.notices[0].alert
    assert alert.reminder and not alert.resolved
    assert (alert.event, alert.level, alert.message, alert.context) == ("disk", WARNING, "disk at 91%",
                                                                         {"mount": "/"})
    assert alert.at == from_timestamp(T0 + 600) and alert.firing_for == 600 and alert.episode == "ep1"


def test_a_reminder_not_due_changes_nothing_and_tells_nobody():
    current = fired()
    transition = decide(current, Remind("disk"), T0 + 599, remind_policy(600))
    assert (transition.kind, transition.before, transition.after, transition.notices) == (NOT_DUE, current, current,
                                                                                          ())
    assert not transition.changes_state


def test_a_reminder_of_nothing_active_is_not_active():
    transition = decide(None, Remind("disk"), T0, remind_policy(60))
    assert (transition.kind, transition.after, transition.notices) == (NOT_ACTIVE, None, ())


def test_reminders_repeat_once_per_interval_not_once_per_look():
    current = fired()
    policy = remind_policy(600)
    sent = []
    for now in range(int(T0) + 100, int(T0) + 2000, 100):  # a look every 100 s for 1900 s
        transition = decide(current, Remind("disk"), float(now), policy)
        current = transition.after
        if transition.kind == REMINDED:
            sent.append(now - T0)
    assert sent == [600, 1200, 1800]


def test_due_reminders_lists_exactly_the_events_due_in_order():
    events = [ActiveEvent(name, WARNING, "m", {}, since=T0, at=at)
              for name, at in [("a", T0), ("b", T0 + 50), ("c", T0 - 100)]]
    assert due_reminders(events, T0 + 60, remind_policy(60)) == ["a", "c"]
    assert due_reminders(events, T0 + 59, remind_policy(60)) == ["c"]
    assert due_reminders(events, T0 + 10_000, remind_policy(None)) == []


# ---- acknowledge ---------------------------------------------------------------------------------------------


def acknowledged(level=WARNING, at=T0 + 30):
    return decide(fired(level), Acknowledge("disk"), at, POLICY).after


def test_an_acknowledgement_keeps_the_episode_active_notes_when_and_tells_nobody():
    current = fired(ERROR)
    transition = decide(current, Acknowledge("disk"), T0 + 30, POLICY)
    assert transition.kind == ACKNOWLEDGED and transition.changes_state and transition.notices == ()
    assert state(transition.after) == state(replace(current, acknowledged_at=T0 + 30))
    assert transition.after.acknowledged and not current.acknowledged


def test_acknowledging_twice_keeps_the_first_time_and_writes_nothing():
    current = acknowledged()
    transition = decide(current, Acknowledge("disk"), T0 + 90, POLICY)
    assert (transition.kind, transition.after, transition.notices) == (ALREADY_ACKNOWLEDGED, current, ())
    assert not transition.changes_state and current.acknowledged_at == T0 + 30


def test_acknowledging_nothing_active_is_not_active():
    assert decide(None, Acknowledge("disk"), T0, POLICY).kind == NOT_ACTIVE


@pytest.mark.parametrize("raised, kind, still_acknowledged", [(INFO, DEBOUNCED, True), (WARNING, DEBOUNCED, True),
                                                              (ERROR, ESCALATED, False), (CRITICAL, ESCALATED, False)])
def test_a_repeat_keeps_the_acknowledgement_and_an_escalation_undoes_it(raised, kind, still_acknowledged):
    transition = decide(acknowledged(WARNING), Raise("disk", raised, "again"), T0 + 60, POLICY)
    assert transition.kind == kind and transition.after.acknowledged is still_acknowledged
    assert bool(transition.notices) is (kind == ESCALATED)


def test_an_acknowledged_event_is_never_due_a_reminder():
    policy = remind_policy(60)
    current = acknowledged()
    assert not reminder_due(current, T0 + 10_000, policy) and due_reminders([current], T0 + 10_000, policy) == []
    assert decide(current, Remind("disk"), T0 + 10_000, policy).kind == NOT_DUE


def test_an_acknowledged_event_still_recovers_to_everyone_told():
    current = replace(acknowledged(), told=frozenset({"slack", "sms"}))
    transition = decide(current, Clear("disk"), T0 + 600, POLICY)
    assert transition.kind == CLEARED and channels(transition) == ["slack", "sms"] and kinds(transition) == {RECOVERY}


@pytest.mark.parametrize("kind, writes", [(FIRED, True), (ESCALATED, True), (CLEARED, True), (REMINDED, True),
                                          (ACKNOWLEDGED, True), (DEBOUNCED, False), (NOT_ACTIVE, False),
                                          (NOT_DUE, False), (ALREADY_ACKNOWLEDGED, False)])
def test_which_transitions_must_be_written(kind, writes):
    assert Transition(kind, None, None).changes_state is writes


def test_the_stored_state_as_an_alert_is_the_latest_firing():
    record = decide(fired(WARNING), Raise("disk", ERROR, "worse", {"k": 1}), T0 + 9, POLICY).after
    alert = record.alert()
    assert (alert.event, alert.level, alert.message, alert.context, alert.at, alert.episode) == (
        "disk", ERROR, "worse", {"k": 1}, from_timestamp(T0 + 9), "ep1")
    assert not alert.resolved and not alert.reminder


# ---- the policies the lifecycle reads --------------------------------------------------------------------------


@pytest.mark.parametrize("levels, events, event, level, interval", [
    ({}, {}, "disk", WARNING, None),
    ({WARNING: 600}, {}, "disk", WARNING, 600),
    ({WARNING: 600}, {}, "disk", ERROR, None),
    ({WARNING: 600}, {"disk": 60}, "disk", WARNING, 60),  # the monitor's own remind_every wins
    ({WARNING: 600}, {"disk": 60}, "cpu", WARNING, 600),
    ({}, {"disk": 60}, "disk", CRITICAL, 60),
])
def test_reminder_intervals_per_level_overridden_per_event(levels, events, event, level, interval):
    assert ReminderPolicy(levels, events).interval(event, level) == interval


@pytest.mark.parametrize("levels, events, on", [({}, {}, False), ({WARNING: 60}, {}, True), ({}, {"disk": 60}, True),
                                                ({WARNING: 60}, {"disk": 60}, True)])
def test_reminders_are_on_when_any_interval_is_set(levels, events, on):
    assert bool(ReminderPolicy(levels, events)) is on


def test_routing_per_level_with_per_event_overrides():
    routing = Routing({"warning": ["slack", " email ", "slack", ""], Level.CRITICAL: "sms, pager"},
                      events={"backup": ["tape"], "silent": []})
    assert routing.channels_for("disk", WARNING) == ("slack", "email")  # blanks and repeats dropped, order kept
    assert routing.channels_for("disk", CRITICAL) == ("sms", "pager")  # a comma-separated string
    assert routing.channels_for("disk", INFO) == () and routing.channels_for("disk", ERROR) == ()
    assert routing.channels_for("backup", CRITICAL) == ("tape",)
    assert routing.channels_for("silent", CRITICAL) == ()  # an empty override means nobody, not the level's route
    assert routing.names() == {"slack", "email", "sms", "pager", "tape"}  # overrides' channels too


def test_routing_without_overrides_and_coerce():
    routing = Routing({"info": ["log"]})
    assert routing.events == {} and routing.names() == {"log"}
    assert Routing.coerce(routing) is routing
    made = Routing.coerce({"error": ["email"]})
    assert isinstance(made, Routing) and made.channels_for("x", ERROR) == ("email",)


# ---- dependencies: an active parent inhibits its children ------------------------------------------------------

LOGGED = Routing({INFO: ["log"], WARNING: ["log", "slack"], ERROR: ["log", "email", "desktop"],
                  CRITICAL: ["log", "sms"]})
WITH_LOG = Policy(LOGGED.channels_for, EVERYONE, lambda event, level: 60.0, log_channels=frozenset({"log"}))


def inhibited(level=WARNING, parent="network") -> ActiveEvent:
    """A child that fired while its parent was active."""
    raised = Raise("disk", level, "disk at 91%", {}, depends_on=("network", "vpn"))
    return decide(None, raised, T0, WITH_LOG, "ep1", {parent}.__contains__).after


@pytest.mark.parametrize("depends_on, active, expected", [
    ((), set(), None), (("network",), set(), None), (("network",), {"network"}, "network"),
    (("vpn", "network"), {"network", "vpn"}, "vpn"), (("vpn", "network"), {"network"}, "network"),
    (("disk",), {"disk"}, None)])  # an event is never its own parent
def test_the_inhibitor_is_the_first_parent_that_is_active(depends_on, active, expected):
    assert inhibitor("disk", depends_on, active.__contains__) == expected


def test_a_child_firing_while_its_parent_is_active_is_kept_and_tells_only_the_log():
    transition = decide(None, Raise("disk", ERROR, "disk at 99%", depends_on=("vpn", "network")), T0, WITH_LOG,
                        "ep1", {"network", "other"}.__contains__)
    assert transition.kind == FIRED and channels(transition) == ["log"]
    after = transition.after
    assert after.inhibited_by == "network" and after.told == {"log"} and after.depends_on == ("vpn", "network")


def test_a_child_with_no_parent_active_fires_as_any_other():
    transition = decide(None, Raise("disk", ERROR, "x", depends_on=("network",)), T0, WITH_LOG, "ep1")
    assert channels(transition) == ["log", "email", "desktop"] and transition.after.inhibited_by is None


def test_an_inhibited_child_escalating_still_tells_only_the_log():
    transition = decide(inhibited(WARNING), Raise("disk", CRITICAL, "worse"), T0 + 5, WITH_LOG,
                        active={"network"}.__contains__)
    assert transition.kind == ESCALATED and channels(transition) == ["log"]
    assert transition.after.inhibited_by == "network" and transition.after.depends_on == ("network", "vpn")


def test_a_child_already_told_is_not_inhibited_by_a_parent_that_fired_after_it():
    told = decide(None, Raise("disk", WARNING, "x", depends_on=("network",)), T0, WITH_LOG, "ep1").after
    transition = decide(told, Raise("disk", ERROR, "worse"), T0 + 5, WITH_LOG, active={"network"}.__contains__)
    assert channels(transition) == ["log", "email", "desktop"] and transition.after.inhibited_by is None


def test_a_release_tells_every_channel_not_told_yet_once_saying_what_recovered():
    transition = decide(inhibited(ERROR), Release("disk", "network"), T0 + 300, WITH_LOG)
    assert transition.kind == RELEASED and channels(transition) == ["email", "desktop"] and kinds(transition) == {FIRING}
    assert transition.after.inhibited_by is None and transition.after.told == {"log", "email", "desktop"}
    alert = transition.notices[0].alert
    assert alert.released_from == "network" and alert.note() == "still firing after network recovered"
    assert alert.at == from_timestamp(T0 + 300) and alert.since == from_timestamp(T0)


def test_a_release_while_another_parent_is_active_inhibits_by_that_one_and_tells_nobody():
    transition = decide(inhibited(ERROR), Release("disk", "network"), T0 + 300, WITH_LOG,
                        active={"network", "vpn"}.__contains__)  # network is still in the file as it clears
    assert transition.kind == REINHIBITED and transition.notices == () and transition.after.inhibited_by == "vpn"


@pytest.mark.parametrize("current", [None, "told", "other parent"])
def test_a_release_of_an_event_not_inhibited_by_that_parent_does_nothing(current):
    record = {None: None, "told": fired(ERROR, policy=WITH_LOG), "other parent": inhibited(parent="vpn")}[current]
    transition = decide(record, Release("disk", "network"), T0 + 300, WITH_LOG)
    assert transition.kind == NOT_ACTIVE and transition.notices == () and not transition.changes_state


def test_an_inhibited_child_that_recovers_tells_only_the_log():
    transition = decide(inhibited(ERROR), Clear("disk"), T0 + 60, WITH_LOG)
    assert transition.kind == CLEARED and channels(transition) == ["log"]


def test_an_inhibited_child_is_never_due_a_reminder():
    assert not reminder_due(inhibited(), T0 + 3600, WITH_LOG)
    assert reminder_due(decide(inhibited(), Release("disk", "network"), T0 + 10, WITH_LOG).after, T0 + 3600, WITH_LOG)


@pytest.mark.parametrize("kind", [RELEASED, REINHIBITED])
def test_releases_are_written(kind):
    assert Transition(kind, None, None).changes_state


def test_a_released_alert_survives_the_outbox_round_trip():
    alert = decide(inhibited(), Release("disk", "network"), T0 + 10, WITH_LOG).notices[0].alert
    assert type(alert).from_dict(alert.to_dict()) == alert
