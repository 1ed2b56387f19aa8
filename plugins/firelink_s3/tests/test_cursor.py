"""The polling cursor's documented rule, on listings as S3 returns them (pure logic, no server)."""

from __future__ import annotations

import json

from firelink_s3._cursor import ListCursor, OrderedCursor, S3Object, cursor_from_json

T0 = 1_790_000_000.0


def obj(key: str, etag: str, at: float) -> S3Object:
    return S3Object(key=key, etag=etag, size=1, last_modified=at)


def keys(objects: list[S3Object]) -> list[str]:
    return [o.key for o in objects]


def test_objects_stamped_in_the_same_second_as_the_newest_all_fire() -> None:
    cursor = ListCursor()
    fired, cursor = cursor.scan([obj("a", "1", T0)], lookback=0)
    assert keys(fired) == ["a"]
    # b appears later with the very same LastModified second as a (S3's granularity).
    fired, cursor = cursor.scan([obj("a", "1", T0), obj("b", "2", T0)], lookback=0)
    assert keys(fired) == ["b"]
    fired, _ = cursor.scan([obj("a", "1", T0), obj("b", "2", T0)], lookback=0)
    assert fired == []


def test_an_overwrite_fires_when_the_etag_changes() -> None:
    _, cursor = ListCursor().scan([obj("daily.csv", "1", T0)], lookback=60)
    fired, cursor = cursor.scan([obj("daily.csv", "2", T0 + 5)], lookback=60)
    assert [(o.key, o.etag) for o in fired] == [("daily.csv", "2")]
    fired, cursor = cursor.scan([obj("daily.csv", "2", T0 + 9)], lookback=60)  # same bytes again
    assert fired == []
    # Long after: an overwrite always gets a new LastModified beyond the horizon.
    fired, _ = cursor.scan([obj("daily.csv", "1", T0 + 86400)], lookback=60)
    assert [(o.key, o.etag) for o in fired] == [("daily.csv", "1")]


def test_a_late_object_fires_within_lookback_and_not_beyond() -> None:
    _, cursor = ListCursor().scan([obj("new", "1", T0 + 1000)], lookback=600)
    # A multipart upload started 500 s before the newest object becomes visible now.
    fired, cursor = cursor.scan([obj("new", "1", T0 + 1000), obj("slow", "2", T0 + 500)], lookback=600)
    assert keys(fired) == ["slow"]
    fired, _ = cursor.scan([obj("new", "1", T0 + 1000), obj("too-slow", "3", T0 + 300)], lookback=600)
    assert fired == []


def test_the_cursor_stays_compact_however_large_the_bucket() -> None:
    listing = [obj(f"k{i:06d}", str(i), T0 + i) for i in range(100_000)]
    fired, cursor = ListCursor().scan(listing, lookback=60)
    assert len(fired) == 100_000
    assert fired[0].key == "k000000" and fired[-1].key == "k099999"  # oldest first
    assert len(cursor.recent) == 61  # only what changed within `lookback` of the newest
    assert len(json.dumps(cursor.to_json())) < 5_000
    fired, again = cursor.scan(listing, lookback=60)
    assert fired == [] and again == cursor


def test_deleted_objects_leave_the_cursor_and_the_horizon_never_moves_back() -> None:
    _, cursor = ListCursor().scan([obj("a", "1", T0), obj("b", "2", T0 + 1)], lookback=10)
    horizon = cursor.horizon
    fired, cursor = cursor.scan([obj("a", "1", T0)], lookback=10)  # b deleted
    assert fired == [] and set(cursor.recent) == {"a"} and cursor.horizon == horizon
    fired, cursor = cursor.scan([obj("a", "1", T0), obj("b", "2", T0 + 1)], lookback=10)
    assert keys(fired) == ["b"]  # re-created: a new object


def test_unwanted_keys_never_fire_nor_take_room() -> None:
    fired, cursor = ListCursor().scan(
        [obj("a.csv", "1", T0), obj("a.tmp", "2", T0)], lookback=10, wanted=lambda k: k.endswith(".csv")
    )
    assert keys(fired) == ["a.csv"] and set(cursor.recent) == {"a.csv"}


def test_dedupe_keys_identify_a_version_and_survive_a_relisting() -> None:
    assert obj("a", "1", T0).dedupe_key == obj("a", "1", T0).dedupe_key
    assert obj("a", "1", T0).dedupe_key != obj("a", "1", T0 + 60).dedupe_key  # A -> B -> A again


def test_cursors_round_trip_and_a_mode_change_starts_over() -> None:
    _, cursor = ListCursor().scan([obj("a", "1", T0)], lookback=10)
    stored = json.loads(json.dumps(cursor.to_json()))
    assert cursor_from_json(stored, ordered=False) == cursor
    assert cursor_from_json(stored, ordered=True) is None
    ordered = OrderedCursor(after="logs/2026-11-24T07.log")
    assert cursor_from_json(json.loads(json.dumps(ordered.to_json())), ordered=True) == ordered
    assert cursor_from_json(ordered.to_json(), ordered=False) is None
    assert cursor_from_json(None, ordered=False) is None
