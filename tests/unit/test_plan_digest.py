"""Planning decides exactly what it decided before the planning speed-up (issue 17): every
plan, write and written value of a 3,000-contract synthetic book, full (app.yaml: health,
upsell, playbook, journey) and renewals-only, digested by benchmarks.plan_digest.

The digests were taken from the code before the change. A change meant to alter what
planning decides updates them (`python -m benchmarks.plan_digest --contracts 3000`) and says
why in its commit; a change meant only to make planning faster or leaner must leave them."""

from __future__ import annotations

from benchmarks.plan_digest import full_digest, renewals_digest

CONTRACTS, SEED = 3000, 1234
FULL = "8ca813c128478e62d1244a0fe4b618a179d402b41902f5a69b5ed2cf900576c3"
RENEWALS = "d0d219681018ba0a6aaf99206526eda3b795954a76979f35eab6c4fe18736102"


def test_full_planning_of_the_synthetic_book_decides_what_it_did():
    assert full_digest(CONTRACTS, SEED) == FULL


def test_renewals_only_planning_of_the_synthetic_book_decides_what_it_did():
    assert renewals_digest(CONTRACTS, SEED) == RENEWALS
