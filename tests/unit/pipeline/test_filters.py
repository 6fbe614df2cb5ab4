from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from tailrace.pipeline.decoders.framing import Line
from tailrace.pipeline.errors import FilterSpecError
from tailrace.pipeline.events import Event, EventDecoder
from tailrace.pipeline.filters import (
    REASON_AFTER,
    REASON_BEFORE,
    REASON_NO_TIME,
    REASON_STREAM,
    EventFilter,
    Predicate,
    field_text,
    is_zero_time,
    parse_time_bound,
)
from tailrace.pipeline.jobs import ReprocessingConfig
from tailrace.pipeline.runtime import check_config, event_filter


def make(payload: dict[str, object]) -> Event:
    raw = orjson.dumps(payload)
    parsed = EventDecoder().decode(Line(1, 0, len(raw) + 1, raw))
    assert isinstance(parsed, Event)
    return parsed


def at(moment: str, **extra: object) -> Event:
    return make({"messageCreated": moment, **extra})


def test_no_conditions_selects_everything() -> None:
    keep = EventFilter()
    assert keep.selects_all
    assert keep.check(make({})) is None
    assert not EventFilter(stream_ids=["a"]).selects_all


def test_stream_ids() -> None:
    keep = EventFilter(stream_ids=["a", "b"])
    assert keep.check(make({"origin": {"sourceId": "a"}})) is None
    assert keep.check(make({"origin": {"slug": "b"}})) is None
    assert keep.check(make({"origin": {"sourceId": "c"}})) == REASON_STREAM
    assert keep.check(make({})) == REASON_STREAM


def test_date_range_is_inclusive_at_both_ends() -> None:
    keep = EventFilter(
        date_from=parse_time_bound("2024-01-01T00:00:00Z"),
        date_to=parse_time_bound("2024-01-31T23:59:59Z"),
    )
    assert keep.check(at("2024-01-01T00:00:00Z")) is None
    assert keep.check(at("2024-01-31T23:59:59Z")) is None
    assert keep.check(at("2023-12-31T23:59:59.999Z")) == REASON_BEFORE
    assert keep.check(at("2024-01-31T23:59:59.001Z")) == REASON_AFTER


def test_date_range_compares_instants_across_timezones() -> None:
    keep = EventFilter(date_from=datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2))))
    # 2023-12-31T22:00Z is the bound itself; one second earlier is out.
    assert keep.check(at("2023-12-31T22:00:00Z")) is None
    assert keep.check(at("2023-12-31T23:59:00+02:00")) == REASON_BEFORE
    assert keep.check(at("2023-12-31T21:59:59")) == REASON_BEFORE  # naive event time: UTC


def test_naive_bounds_mean_utc() -> None:
    keep = EventFilter(date_to=datetime(2024, 1, 1))
    assert keep.date_to == datetime(2024, 1, 1, tzinfo=UTC)
    assert keep.check(at("2024-01-01T00:00:00Z")) is None
    assert keep.check(at("2024-01-01T00:00:00-01:00")) == REASON_AFTER
    assert parse_time_bound("2024-01-01") == datetime(2024, 1, 1, tzinfo=UTC)


def test_epoch_millis_in_range() -> None:
    keep = EventFilter(date_from=datetime(2025, 4, 1, tzinfo=UTC))
    assert keep.check(make({"timestamp": 1743532441581})) is None
    assert keep.check(make({"timestamp": 1_000})) == REASON_BEFORE


def test_event_without_time_only_filtered_when_range_set() -> None:
    no_time = make({"timestamp": "not a date"})
    assert EventFilter(date_to=datetime(2030, 1, 1, tzinfo=UTC)).check(no_time) == REASON_NO_TIME
    assert EventFilter(where=["timestamp=not a date"]).check(no_time) is None


def test_empty_range_rejected() -> None:
    with pytest.raises(FilterSpecError, match="date range is inverted"):
        EventFilter(date_from=datetime(2024, 2, 1), date_to=datetime(2024, 1, 1))
    with pytest.raises(FilterSpecError, match="invalid date"):
        parse_time_bound("last tuesday")


def test_predicates_with_dotted_paths() -> None:
    keep = EventFilter(where=["type=track", "origin.slug=web"])
    assert keep.check(make({"type": "track", "origin": {"slug": "web"}})) is None
    assert keep.check(make({"type": "page", "origin": {"slug": "web"}})) == "type != 'track'"
    assert keep.check(make({"type": "track", "origin": {"slug": "app"}})) == (
        "origin.slug != 'web'"
    )
    assert keep.check(make({"type": "track"})) == "origin.slug != 'web'"


def test_predicate_value_may_contain_equals_and_be_empty() -> None:
    assert Predicate.parse("q=a=b").value == "a=b"
    empty = EventFilter(where=["name="])
    assert empty.check(make({"name": ""})) is None
    assert empty.check(make({})) == "name != ''"


@pytest.mark.parametrize(
    ("value", "text"),
    [("x", "x"), (3, "3"), (1.5, "1.5"), (True, "true"), (False, "false"), ([1], "[1]")],
)
def test_field_text(value: object, text: str) -> None:
    assert field_text(value) == text


def test_predicate_compares_numbers_and_booleans_as_text() -> None:
    keep = EventFilter(where=["level=30", "cacheHit=true"])
    assert keep.check(make({"level": 30, "cacheHit": True})) is None
    assert keep.check(make({"level": 40, "cacheHit": True})) == "level != '30'"


@pytest.mark.parametrize("spec", ["no-equals", "=value", "a..b=1"])
def test_bad_predicates(spec: str) -> None:
    with pytest.raises(FilterSpecError):
        EventFilter(where=[spec])


def test_stream_then_date_then_predicates_order() -> None:
    keep = EventFilter(
        stream_ids=["s"], date_from=datetime(2024, 1, 1, tzinfo=UTC), where=["type=track"]
    )
    wrong_everything = at("2000-01-01T00:00:00Z", origin={"slug": "x"}, type="page")
    assert keep.check(wrong_everything) == REASON_STREAM
    assert keep.check(at("2000-01-01T00:00:00Z", origin={"slug": "s"})) == REASON_BEFORE


# --- Predicates read the values decoded for them -----------------------------------------


def decoded_for(keep: EventFilter, payload: dict[str, object]) -> Event:
    raw = orjson.dumps(payload)
    parsed = EventDecoder(extra_paths=keep.paths).decode(Line(1, 0, len(raw) + 1, raw))
    assert isinstance(parsed, Event)
    return parsed


def test_paths_are_the_predicates_distinct_paths_in_order() -> None:
    keep = EventFilter(where=["origin.slug=web", "type=track", "origin.slug=app"])
    assert keep.paths == (("origin", "slug"), ("type",))
    assert EventFilter(stream_ids=["a"]).paths == ()


def test_predicates_use_decoded_values_without_a_full_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keep = EventFilter(where=["type=track", "context.page.path=/cart", "level=30"])
    passing = decoded_for(
        keep, {"type": "track", "context": {"page": {"path": "/cart"}}, "level": 30}
    )
    failing = decoded_for(keep, {"type": "track", "context": {"page": "flat"}, "level": 30})

    def no_full_parse(_: Event) -> None:
        raise AssertionError("parsed the whole event")

    monkeypatch.setattr(Event, "data", property(no_full_parse))
    assert keep.check(passing) is None
    assert keep.check(failing) == "context.page.path != '/cart'"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"type": "track", "origin": {"slug": "web"}}, None),
        ({"type": "track", "origin": {"slug": "app"}}, "origin.slug != 'web'"),
        ({"type": "track", "origin": "web"}, "origin.slug != 'web'"),
        ({"type": "track", "origin": None}, "origin.slug != 'web'"),
        ({"origin": {"slug": "web"}}, "type != 'track'"),
    ],
)
def test_decoded_and_full_parse_predicates_agree(
    payload: dict[str, object], expected: str | None
) -> None:
    keep = EventFilter(where=["origin.slug=web", "type=track"])
    assert keep.check(decoded_for(keep, payload)) == expected
    assert keep.check(make(payload)) == expected  # decoded without the filter's paths


def test_predicate_on_an_object_compares_its_json() -> None:
    # `origin` is read whole here and is also a prefix of the stream id paths.
    keep = EventFilter(stream_ids=["s"], where=['origin={"sourceId":"s","n":1}'])
    assert keep.check(decoded_for(keep, {"origin": {"sourceId": "s", "n": 1}})) is None
    assert keep.check(decoded_for(keep, {"origin": {"sourceId": "s"}})) == (
        'origin != \'{"sourceId":"s","n":1}\''
    )


def test_event_decoded_for_other_paths_still_checks() -> None:
    keep = EventFilter(where=["type=track"])
    other = EventFilter(where=["level=1", "type=track"])
    assert keep.check(decoded_for(other, {"type": "track", "level": 1})) is None
    assert keep.check(decoded_for(other, {"type": "page", "level": 1})) == "type != 'track'"
    # Equal paths in another tuple work as well.
    raw = b'{"type":"page"}'
    parsed = EventDecoder(extra_paths=[("type",)]).decode(Line(1, 0, len(raw) + 1, raw))
    assert isinstance(parsed, Event)
    assert keep.check(parsed) == "type != 'track'"


def test_time_is_parsed_only_when_a_range_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = at("2024-01-01T00:00:00Z", origin={"slug": "s"})

    def no_time(_: Event) -> None:
        raise AssertionError("parsed the time")

    monkeypatch.setattr(Event, "time", property(no_time))
    assert EventFilter(stream_ids=["s"]).check(parsed) is None
    assert EventFilter(stream_ids=["x"], date_from=datetime(2020, 1, 1)).check(parsed) == (
        REASON_STREAM
    )


@pytest.mark.parametrize(
    "zero",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:00",
        "0001-01-01 00:00:00",
        "0001-01-01T00:00:00.000Z",
        " 0001-01-01T00:00:00Z ",
    ],
)
def test_go_zero_time_is_an_unset_bound(zero: str) -> None:
    assert is_zero_time(zero)
    config = ReprocessingConfig(source="x", sink="null:", date_from=zero, date_to=zero)
    assert (config.date_from, config.date_to) == (None, None)
    stored = ReprocessingConfig.from_stored({"source": "x", "sink": "null:", "date_to": zero})
    assert stored.date_to is None
    assert event_filter(config).selects_all


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:01Z", "0001-01-02T00:00:00Z", "2026-01-01T00:00:00Z", "nope"]
)
def test_other_times_are_kept_as_bounds(moment: str) -> None:
    assert not is_zero_time(moment)
    assert ReprocessingConfig(source="x", sink="null:", date_to=moment).date_to == moment


def test_an_inverted_range_is_refused_before_the_job_is_stored() -> None:
    config = ReprocessingConfig(
        source="x", sink="null:", date_from="2026-02-01T00:00:00Z", date_to="2026-01-01"
    )
    with pytest.raises(FilterSpecError) as caught:
        check_config(config)
    message = str(caught.value)
    assert "inverted" in message and "2026-02-01T00:00:00+00:00" in message
    assert "every event would be filtered out" in message
