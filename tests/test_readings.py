"""Readings kept for charts and uptime: stored as they come, merged into coarser buckets with age, forgotten with
the history."""
import pytest

from conftest import SCHEMA_6, back_to_schema

from tray_alerts.readings import (DAY, FIVE_MINUTES, HOURLY, RAW, WEEK, ReadingRow, Retention, aligned, downsample,
                                  load, monitors, record, uptime)
from tray_alerts.state import StateStore

T0 = 1_780_002_000.0  # a whole number of hours


@pytest.fixture
def store(tmp_path):
    store = StateStore(tmp_path / "state.db")
    yield store
    store.close()


def keep(store, monitor, readings):
    """Store (at, value, bad) readings in one write."""
    with store.write() as tx:
        for at, value, bad in readings:
            record(tx, monitor, at, value, bad)


def row(at, span, value, count=1, bad=0, monitor="disk", low=None, high=None, valued=None):
    return ReadingRow(monitor, at, span, value, value if low is None else low, value if high is None else high,
                      count, count if valued is None else valued, bad)


@pytest.mark.parametrize("moment, span, start", [(T0 + 299, FIVE_MINUTES, T0), (T0 + 300, FIVE_MINUTES, T0 + 300),
                                                 (T0 + 3599, HOURLY, T0), (T0 - 1, HOURLY, T0 - 3600)])
def test_a_moment_belongs_to_the_bucket_that_starts_at_a_whole_span(moment, span, start):
    assert aligned(moment, span) == start


def test_the_cut_offs_never_split_a_bucket():
    steps = Retention().steps(T0 + DAY + 1234)
    assert steps == [(FIVE_MINUTES, T0 + 1200), (HOURLY, aligned(T0 + DAY + 1234 - WEEK, HOURLY))]


@pytest.mark.parametrize("rows, expected", [([], None), ([row(T0, RAW, 1.0)], 1.0), ([row(T0, RAW, 1.0, bad=1)], 0.0),
                                            ([row(T0, FIVE_MINUTES, 1.0, count=9, bad=1), row(T0, RAW, None)], 0.9)])
def test_uptime_is_the_share_of_readings_that_were_fine(rows, expected):
    assert uptime(rows) == expected


def test_readings_are_kept_as_they_come_and_read_back_oldest_first(store):
    keep(store, "disk", [(T0 + 60, 91.5, True), (T0, 90.0, False), (T0 + 120, None, True)])
    keep(store, "api", [(T0, 0.2, False)])
    assert load(store, "disk", T0 + 30) == [row(T0 + 60, RAW, 91.5, bad=1), row(T0 + 120, RAW, None, valued=0, bad=1)]
    assert monitors(store) == ["api", "disk"]


def test_readings_older_than_a_day_become_five_minute_buckets_and_older_than_a_week_hourly(store):
    keep(store, "disk", [(T0 + i * 60, float(i), i == 3) for i in range(10)])  # 10 readings over 10 minutes
    keep(store, "disk", [(T0 + 7 * 60 + 30, None, True)])  # a failed check: no value
    now = T0 + DAY + 600
    merged = downsample(store, now, Retention())
    assert merged == 11
    assert load(store, "disk", 0) == [row(T0, FIVE_MINUTES, 2.0, count=5, bad=1, low=0.0, high=4.0),
                                      row(T0 + 300, FIVE_MINUTES, 7.0, count=6, valued=5, bad=1, low=5.0, high=9.0)]
    assert downsample(store, now, Retention()) == 0  # nothing more to do: no bucket is merged twice
    later = T0 + WEEK + 3600
    downsample(store, later, Retention())
    assert load(store, "disk", 0) == [row(T0, HOURLY, 4.5, count=11, valued=10, bad=2, low=0.0, high=9.0)]
    assert uptime(load(store, "disk", 0)) == 9 / 11


def test_recent_readings_stay_raw_beside_merged_ones(store):
    keep(store, "disk", [(T0, 1.0, False), (T0 + DAY, 2.0, False)])
    downsample(store, T0 + DAY + 300, Retention())
    assert load(store, "disk", 0) == [row(T0, FIVE_MINUTES, 1.0), row(T0 + DAY, RAW, 2.0)]


def test_readings_past_the_history_age_are_forgotten(store):
    keep(store, "disk", [(T0, 1.0, False), (T0 + 10 * DAY, 2.0, False)])
    downsample(store, T0 + 31 * DAY, Retention(keep=30 * DAY))
    assert [(r.at, r.value) for r in load(store, "disk", 0)] == [(T0 + 10 * DAY, 2.0)]


def test_a_schema_6_file_gains_the_readings_table(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path).close()
    back_to_schema(path, SCHEMA_6)
    store = StateStore(path)
    try:
        keep(store, "disk", [(T0, 1.0, False)])
        assert load(store, "disk", 0) == [row(T0, RAW, 1.0)]
    finally:
        store.close()


def test_a_summary_gives_the_latest_value_the_days_range_and_uptime_over_a_day_and_a_week():
    from tray_alerts.readings import Summary, summarise

    now = T0 + WEEK
    rows = [row(T0 + 3600, HOURLY, 50.0, count=12, bad=12, low=40.0, high=60.0),  # six days ago: down
            row(now - 3 * 3600, FIVE_MINUTES, 80.0, count=4, low=70.0, high=85.0),
            row(now - 60, RAW, 90.0), row(now - 30, RAW, None, valued=0, bad=1)]
    assert summarise(rows, now) == Summary(latest=90.0, low=70.0, mean=82.0, high=90.0, up_day=5 / 6,
                                           up_week=5 / 18)
    assert summarise([], now) == Summary(None, None, None, None, None, None)


def test_the_monitors_readings_are_kept_as_they_are_taken_and_downsampled_by_the_upkeep(tmp_path):
    from tray_alerts import wiring
    from tray_alerts.clock import FakeClock
    from tray_alerts.config import load_settings

    path = tmp_path / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\n[channel.desktop]\nenabled = no\n"
                    f"[monitor.disk_root]\npath = {tmp_path}\n[monitor.nowhere]\ntype = tcp\nhost = 127.0.0.1\n"
                    "port = 9\n")
    settings = load_settings(path, {})
    clock = FakeClock(T0)
    engine = wiring.build_engine(settings, retry_in_background=False, clock=clock)
    runner = wiring.build_runner(settings, engine)
    try:
        for _ in range(3):
            runner.run_once("disk_root")
            runner.run_once("nowhere")  # refused: a bad reading
            clock.advance(60)
        disk = load(engine.store, "disk_root", 0)
        assert [r.at for r in disk] == [T0, T0 + 60, T0 + 120] and all(0 < r.value <= 100 for r in disk)
        assert uptime(load(engine.store, "nowhere", 0)) == 0.0
        clock.advance(DAY + 600)
        engine.background.maintain()
        assert [(r.span, r.count) for r in load(engine.store, "disk_root", 0)] == [(FIVE_MINUTES, 3)]
    finally:
        runner.stop()
        engine.close()


def test_chart_points_are_slot_means_with_gaps_left_out_and_bad_slots_marked():
    from tray_alerts.readings import chart_points

    rows = [row(T0 + 10, RAW, 10.0), row(T0 + 20, RAW, 20.0), row(T0 + 30, RAW, None, valued=0, bad=1),
            row(T0 + 250, FIVE_MINUTES, 40.0, count=5),  # a bucket counts by its readings
            row(T0 - 5, RAW, 99.0), row(T0 + 400, RAW, 99.0)]  # outside the span
    assert chart_points(rows, T0, T0 + 400, points=4) == [(T0 + 50, 15.0, True), (T0 + 250, 40.0, False)]
    assert chart_points([], T0, T0 + 400) == []
