"""Creates and deletes in flight against listings taken before or after them."""

from __future__ import annotations

from e2b_operator.reconcile.expectations import TTL_SECONDS, Expectations
from e2b_operator.reconcile.observed import ObservedSandbox


def sbx(sid: str) -> ObservedSandbox:
    return ObservedSandbox(sid, "running", {"instance-index": "0"})


def test_a_created_sandbox_counts_until_a_later_listing_shows_it_or_not() -> None:
    e = Expectations()
    e.expect_created(sbx("a"), now=10.0)
    # a listing asked for before the create returned cannot know it: still present
    assert [s.sandbox_id for s in e.apply([], now=10.5, listed_at=9.9)] == ["a"]
    # a listing asked for afterwards that does not show it: it is gone (killed meanwhile)
    assert e.apply([], now=11.0, listed_at=10.2) == []
    assert e.created == {}


def test_without_a_listing_time_only_the_ttl_settles_a_create() -> None:
    e = Expectations()
    e.expect_created(sbx("a"), now=0.0)
    assert [s.sandbox_id for s in e.apply([], now=TTL_SECONDS - 1)] == ["a"]
    assert e.apply([], now=TTL_SECONDS + 1) == []


def test_a_killed_sandbox_stays_gone_until_listings_drop_it() -> None:
    e = Expectations()
    e.expect_deleted("a", now=5.0)
    assert e.apply([sbx("a")], now=5.5, listed_at=5.2) == []
    assert e.deleted  # still listed: keep hiding it
    assert e.apply([], now=6.0, listed_at=5.8) == [] and not e.deleted


def test_a_paused_or_resumed_sandbox_has_that_state_until_a_later_listing() -> None:
    e = Expectations()
    e.expect_state("a", "paused", now=5.0)
    # the listing was asked for before the pause returned: it still says running
    (seen,) = e.apply([sbx("a")], now=5.5, listed_at=4.9)
    assert seen.state == "paused" and not seen.confirmed  # as asked, not yet as listed
    # a later listing is the truth again, whatever it says
    (seen,) = e.apply([sbx("a")], now=6.0, listed_at=5.1)
    assert seen.state == "running" and seen.confirmed
    assert not e.states


def test_a_state_expectation_lapses_after_the_ttl_and_goes_with_a_delete() -> None:
    e = Expectations()
    e.expect_state("a", "paused", now=0.0)
    assert [s.state for s in e.apply([sbx("a")], now=TTL_SECONDS + 1)] == ["running"]
    e.expect_state("a", "paused", now=100.0)
    e.expect_deleted("a", now=101.0)
    assert not e.states
