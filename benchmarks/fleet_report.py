"""The fleet benchmark's figures and verdicts, from what the fakes counted and the job_runs rows
the workers wrote (started_at against each slot's wall time). A line per CRM where they differ;
the share of a limit covers both: a HubSpot portal's peak 10 s window over its limit, a
Salesforce org's day of API use over its daily allocation."""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.common import Verdict, flush, row, verdict

TARGET_SHARE = 0.90
TARGET_P95_S = 60.0
DONE = ("ok", "partial")


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def slot_key(r) -> tuple:
    """(connection, job, slot) of a job_runs row as read by FleetState.job_runs."""
    return (r[0], r[1], _utc(r[2]).replace(microsecond=0))


def report(
    *,
    tenants,
    beat,
    runs,
    inbox,
    stats,
    killer,
    day_s,
    day_wall,
    drained,
    workers,
    threads,
    cpu,
    machine,
    incremental_hours,
) -> list[Verdict]:
    scale = 86_400 / day_s
    wanted = {
        (c, j, s.replace(microsecond=0)) for (c, j), slots in beat.slots.items() for s in slots
    }
    by_slot = {(r[0], r[1], _utc(r[2]).replace(microsecond=0)): r for r in runs}
    found = [by_slot[k] for k in wanted if k in by_slot]
    done = [r for r in found if r[5] in DONE]
    failed = [r for r in found if r[5] == "failed"]
    delays = [(_utc(r[3]) - _utc(r[2])).total_seconds() for r in found]
    busy = sum((_utc(r[4]) - _utc(r[3])).total_seconds() for r in found if r[4])
    span = day_wall + drained
    portals, orgs = stats["portals"], stats.get("orgs", {})
    tenants_of = [*portals.values(), *orgs.values()]
    throttled = sum(p["throttled"] for p in portals.values())
    refused = sum(o["refused"] for o in orgs.values())
    share = max([_share(t) for t in tenants_of] or [0.0])
    duplicates = sum(t["duplicates"] for t in tenants_of)
    renewals = sum(t["renewals"] for t in tenants_of)
    jobs = sorted({r[1] for r in found})

    row(
        "schedule",
        f"reconciliation (full) + renewal scan + incremental every {incremental_hours:g} h",
    )
    row("slots scheduled", f"{len(wanted):,} (beat sent late: p95 {_pct(beat.late, 95):.2f} s)")
    for job in jobs:
        mine = [r for r in found if r[1] == job]
        ok = sum(1 for r in mine if r[5] in DONE)
        row(f"  {job}", f"{ok:,} of {sum(1 for k in wanted if k[1] == job):,} done")
    row("runs completed", f"{len(done):,} of {len(wanted):,} ({len(failed)} failed)")
    lost = sorted(wanted - set(by_slot))
    if lost:
        shown = ", ".join(f"{c} {j} {s:%H:%M:%S}" for c, j, s in lost[:5])
        row("  slots never run", f"{len(lost)}: {shown}{' ...' if len(lost) > 5 else ''}")
    row(
        "delay slot -> start (wall)",
        f"p50 {_pct(delays, 50):.0f} s, p95 {_pct(delays, 95):.0f} s, max {_pct(delays, 100):.0f} s"
        f" (p95 = {_pct(delays, 95) * scale / 60:.0f} simulated min)",
    )
    row("day (wall) + drain", f"{day_wall:.0f} s + {drained:.0f} s")
    row(
        "pool occupancy (job runs)",
        f"{busy / (workers * threads * span):.0%} of {workers * threads} threads over {span:.0f} s",
    )
    row(
        "CPU",
        f"workers + serve + fake {cpu[0]:.0f} s (fake {cpu[1]:.0f} s); machine busy "
        f"{machine[0] / machine[1]:.0%} of its cores",
    )
    row(
        "webhook deliveries",
        f"{sum(beat.deliveries.values())} ({beat.events_sent} events), answers {beat.deliveries}",
    )
    row("webhook events in the inboxes", ", ".join(f"{k} {v}" for k, v in sorted(inbox.items())))
    row(
        "requests to the fakes",
        f"{sum(t['requests'] for t in tenants_of):,} ({stats['unrouted']} unrouted)",
    )
    _hubspot_lines(portals)
    _salesforce_lines(orgs)
    row("429 + REQUEST_LIMIT_EXCEEDED (by the fakes)", f"{throttled + refused}")
    row("highest share of a limit", f"{share:.0%} (HubSpot or Salesforce, above)")
    row("renewals in the fakes", f"{renewals:,}, duplicates {duplicates}")
    kill_ok, kill_text = _kill(killer, runs) if killer else (True, "skipped (--fleet-no-kill)")
    row("kill -9 mid-run", kill_text)
    flush()
    p95 = _pct(delays, 95)
    verdicts = [
        verdict(
            Verdict(
                "fleet",
                "runs completed",
                f"{len(done):,} of {len(wanted):,}",
                "all",
                len(done) == len(wanted) and bool(wanted),
            )
        ),
        verdict(
            Verdict(
                "fleet",
                "429 / REQUEST_LIMIT_EXCEEDED answers",
                f"{throttled} / {refused}",
                "0",
                throttled + refused == 0,
            )
        ),
        verdict(
            Verdict(
                "fleet",
                "highest share of a limit",
                f"{share:.0%}",
                f"<= {TARGET_SHARE:.0%}",
                share <= TARGET_SHARE,
            )
        ),
        verdict(
            Verdict(
                "fleet",
                "p95 delay slot -> run start",
                f"{p95:.0f} s wall ({p95 * scale / 60:.0f} simulated min)",
                f"<= {TARGET_P95_S:.0f} s",
                p95 <= TARGET_P95_S,
            )
        ),
    ]
    if killer is None:
        return verdicts
    return [
        *verdicts,
        verdict(
            Verdict(
                "fleet",
                "kill -9 mid-run",
                kill_text,
                "redelivered, converged, 0 duplicates",
                kill_ok and duplicates == 0,
            )
        ),
    ]


def _share(tenant: dict) -> float:
    """A portal's peak 10 s window over its limit (or its peak second of search over the search
    limit, the higher); an org's day of API use over its allocation."""
    if "allocation" in tenant:
        return tenant["used"] / tenant["allocation"]
    return max(tenant["peak"] / tenant["limit"], tenant["search_peak"] / tenant["search_limit"])


def _hubspot_lines(portals: dict) -> None:
    if not portals:
        row("HubSpot portals", "none")
        return
    top = max(portals.values(), key=lambda p: p["peak"] / p["limit"])
    top_search = max(portals.values(), key=lambda p: p["search_peak"] / p["search_limit"])
    row(
        f"HubSpot: {len(portals)} portals",
        f"{sum(p['requests'] for p in portals.values()):,} requests, "
        f"{sum(p['throttled'] for p in portals.values())} x 429, "
        f"{sum(p['renewals'] for p in portals.values()):,} renewals, "
        f"{sum(p['duplicates'] for p in portals.values())} duplicates",
    )
    row(
        "  highest share of a portal's limit",
        f"{top['peak'] / top['limit']:.0%}: {top['peak']} of {top['limit']} in 10 s (portal "
        f"{top['portal_id']}); search {top_search['search_peak']} of "
        f"{top_search['search_limit']} a second "
        f"({top_search['search_peak'] / top_search['search_limit']:.0%})",
    )


def _salesforce_lines(orgs: dict) -> None:
    if not orgs:
        row("Salesforce orgs", "none")
        return
    top = max(orgs.values(), key=_share)
    row(
        f"Salesforce: {len(orgs)} orgs",
        f"{sum(o['requests'] for o in orgs.values()):,} requests, "
        f"{sum(o['refused'] for o in orgs.values())} x REQUEST_LIMIT_EXCEEDED, "
        f"{sum(o['renewals'] for o in orgs.values()):,} renewals, "
        f"{sum(o['duplicates'] for o in orgs.values())} duplicates",
    )
    row(
        "  highest share of an org's daily allocation",
        f"{_share(top):.0%}: {top['used']:,} of {top['allocation']:,} API requests in the day "
        f"(org {top['org_id']})",
    )


def _kill(killer, runs) -> tuple[bool, str]:
    if killer.killed_at is None:
        return (
            False,
            "no worker was killed (the biggest book's run was never seen holding its lock)",
        )
    slot = killer.slot
    if slot is None:
        return False, f"worker {killer.killed_worker} killed, but no running slot was found"
    job, scheduled = slot
    mine = [
        r
        for r in runs
        if r[0] == killer.connection and r[1] == job and _utc(r[2]) == _utc(scheduled)
    ]
    if not mine:
        return False, f"killed during {job} {scheduled:%H:%M:%S}: its row is gone"
    r = mine[0]
    finished = r[4] is not None and _utc(r[4]).timestamp() > killer.killed_at
    ok = r[5] in DONE and finished
    after = (_utc(r[4]).timestamp() - killer.killed_at) if r[4] else float("nan")
    return ok, (
        f"worker {killer.killed_worker} killed during {killer.connection} {job}; "
        f"{'redelivered and finished ' + r[5] if ok else 'ended ' + r[5]} {after:.0f} s later "
        f"(runner {r[6]})"
    )
