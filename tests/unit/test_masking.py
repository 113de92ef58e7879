"""Hook output shown outside a sandbox: Secret values masked, length bounded, timeouts named."""

from __future__ import annotations

from e2b_operator.reconcile.health import DETAIL_LIMIT, failure_message
from e2b_operator.reconcile.masking import MASK, mask, shown
from e2b_operator.reconcile.observed import CommandOutcome


def test_every_secret_value_is_masked_longest_first() -> None:
    text = "token=abc123 again abc123, prefix abc1234567"
    assert mask(text, {"abc123", "abc1234567"}) == f"token={MASK} again {MASK}, prefix {MASK}"


def test_lines_of_a_multiline_secret_are_masked_alone() -> None:
    pem = "-----BEGIN KEY-----\nMIIEsecretbody\n-----END KEY-----"
    assert "MIIEsecretbody" not in mask("line: MIIEsecretbody", {pem})


def test_empty_secrets_and_no_secrets_change_nothing() -> None:
    assert mask("plain text", {""}) == "plain text"
    assert mask("plain text", ()) == "plain text"


def test_shown_is_bounded_and_keeps_the_end() -> None:
    text = "x" * 5000 + "the error"
    cut = shown(text, (), 100)
    assert len(cut) == 100 and cut.endswith("the error") and cut.startswith("...")


def test_a_masked_secret_is_not_revealed_by_the_cut() -> None:
    secret = "s" * 40
    cut = shown("a" * 200 + secret + "b" * 30, {secret}, 40)
    # Cut first and the secret's last 7 characters would show, unmasked (a partial match).
    assert "s" not in cut and cut == "..." + "aaa" + MASK + "b" * 30


def test_failure_message_of_a_timeout_says_so() -> None:
    outcome = CommandOutcome(-1, error="TimeoutException: context deadline", timed_out=True)
    assert failure_message(outcome, 5, ()) == "health check timed out after 5s"


def test_failure_message_masks_and_bounds_the_output() -> None:
    outcome = CommandOutcome(3, stdout="", stderr="noise\n" * 1000 + "TOKEN=hunter22 bad")
    message = failure_message(outcome, 5, {"hunter22"})
    assert message.startswith("health check exited 3: ")
    assert "hunter22" not in message and f"TOKEN={MASK} bad" in message
    assert len(message) <= len("health check exited 3: ") + DETAIL_LIMIT
