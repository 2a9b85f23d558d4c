"""The fake portal's admin routes, for a benchmark driving it from another process: the time
of each record written through the API, a user's edit, the limit set while it runs. Not
HubSpot's API: no token, never counted against the limit."""

from __future__ import annotations

import json
import time
import urllib.request

from crm_renewals.connector.ports import OutboundRecord


def admin(fake, name: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{fake.url}/__fake__/{name}", data)) as r:
        return json.loads(r.read())


def test_each_api_write_is_recorded_with_its_time_and_the_record(crm, fake, hub):
    company = hub.company()  # made by a user: not an API write
    skip = admin(fake, "writes")["next"]
    before = time.time()
    fields = {"dealname": "Renewal", "dealstage": "appointmentscheduled"}
    (done,) = crm.upsert("renewal_opportunity", [OutboundRecord("c1:2027-03-31", fields)])
    crm.upsert("renewal_opportunity", [OutboundRecord("c1:2027-03-31", fields)])
    answer = admin(fake, f"writes?after={skip}")
    writes = [w for w in answer["writes"] if w[1] == "deals"]
    assert [w[2] for w in writes] == [done.crm_id, done.crm_id]  # created, then updated
    assert all(before <= w[0] <= time.time() for w in writes)
    assert writes[0][3]["renewal_key"] == "c1:2027-03-31"
    assert admin(fake, f"writes?after={answer['next']}")["writes"] == []
    assert company not in {w[2] for w in answer["writes"]}


def test_a_users_edit_and_a_limit_set_later_take_effect(fake, hub):
    deal = fake.create("deals", {"dealname": "Contract", "contract_end_date": "2027-01-01"})
    admin(fake, "edit", {"type": "deals", "id": deal, "properties": {"contract_end_date": "x"}})
    assert fake.get("deals", deal)["contract_end_date"] == "x"
    assert admin(fake, "limit", {"burst": 3, "interval": 10, "search": 2})["burst"] == 3
    assert (fake.burst, fake.search_limit) == (3, 2)
    assert fake.count("__fake__") == 0  # never counted as API calls
