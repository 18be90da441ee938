"""Timestamps are stored and read as aware UTC on both databases (latency_db.schema.UTCDateTime), and shown
with their zone."""

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import select, text

from akd_tf.cli import main
from db_fixtures import db_url  # noqa: F401  (fixture)
from latency_db.schema import Base, Device, UTCDateTime
from latency_db.store import open_store
from search import runs
from search.config import SearchConfig

NOON_UTC = datetime(2026, 11, 23, 12, 0, 0, 250_000, tzinfo=timezone.utc)


def test_every_timestamp_column_is_utc():
    columns = [f"{table.name}.{column.name}" for table in Base.metadata.tables.values() for column in table.columns
               if isinstance(column.type, sa.DateTime) and not isinstance(column.type, UTCDateTime)]
    assert columns == []


def test_timestamps_come_back_as_aware_utc_whatever_zone_they_were_given_in(db_url):  # noqa: F811
    store = open_store(db_url)
    india = timezone(timedelta(hours=5, minutes=30))
    with store.session() as session:
        session.add_all([Device(name="utc", kind="adb", last_seen_at=NOON_UTC),
                         Device(name="india", kind="adb", last_seen_at=NOON_UTC.astimezone(india)),
                         Device(name="naive", kind="adb", last_seen_at=NOON_UTC.replace(tzinfo=None))])
    with store.session() as session:
        if store.engine.dialect.name == "postgresql":  # PostgreSQL answers in the session's zone
            session.execute(text("SET TIME ZONE 'Asia/Kolkata'"))
        seen = dict(session.execute(select(Device.name, Device.last_seen_at)).all())
        stored = session.scalars(text("SELECT CAST(last_seen_at AS TEXT) FROM devices ORDER BY id")).all()
    assert seen == {"utc": NOON_UTC, "india": NOON_UTC, "naive": NOON_UTC}
    assert {str(moment.tzinfo) for moment in seen.values()} == {"UTC"}
    if store.engine.dialect.name == "sqlite":
        assert stored == ["2026-11-23 12:00:00.250000+00:00"] * 3
    else:
        assert stored == ["2026-11-23 17:30:00.25+05:30"] * 3
    store.close()


def test_rows_stored_without_a_zone_read_as_utc_and_compare_with_new_ones(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'old.db'}")
    with store.session() as session:  # as SQLite held them before UTCDateTime
        session.execute(text("INSERT INTO devices (name, kind, status, consecutive_failures, created_at, "
                             "last_seen_at) VALUES ('old', 'adb', 'online', 0, '2026-11-23 11:00:00.000000', "
                             "'2026-11-23 12:00:00.000000')"))
        session.add(Device(name="new", kind="adb", last_seen_at=NOON_UTC + timedelta(seconds=1)))
    with store.session() as session:
        assert session.scalar(select(Device.last_seen_at).where(Device.name == "old")) == NOON_UTC.replace(
            microsecond=0)
        assert session.scalars(select(Device.name).where(Device.last_seen_at < NOON_UTC)).all() == ["old"]
        assert session.scalars(select(Device.name).where(Device.last_seen_at > NOON_UTC)).all() == ["new"]
    store.close()


def test_printed_timestamps_name_their_zone(tmp_path):
    url = f"sqlite:///{tmp_path / 'shown.db'}"
    store = open_store(url)
    with store.session() as session:
        session.add(Device(name="pixel", kind="adb", model="Pixel 4", status="offline", last_seen_at=NOON_UTC))
    store.close()
    rows = json.loads(CliRunner().invoke(main, ["devices", "list", "--json", "--db", url]).output)
    assert [row["last_seen"] for row in rows if row["name"] == "pixel"] == ["2026-11-23T12:00:00+00:00"]
    table = CliRunner().invoke(main, ["devices", "list", "--db", url]).output.splitlines()
    assert [" 2026-11-23T12:00:00+00:00 " in line for line in table if line.startswith("pixel ")] == [True]
    store = open_store(url)
    runs.create_or_resume(store, SearchConfig(name="timed", reward_source="label", target_ms=1.0),
                          {"input_shape": [32, 32, 1], "classes": 10})
    store.close()
    status = json.loads(CliRunner().invoke(main, ["search", "status", "timed", "--json", "--db", url]).output)
    assert status["created_at"].endswith("+00:00") and status["finished_at"] is None
