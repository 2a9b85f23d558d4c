"""FakeHubSpot's admin routes, for a fake serving in another process (benchmarks): not part of
HubSpot's API, no token, never rate limited.

    GET  /__fake__/stats              requests by endpoint, answers by status
    GET  /__fake__/writes?after=N     the API's record writes from the N-th on: when (Unix
                                      time), object type, id and the record's properties then
    POST /__fake__/edit               {"type", "id", "properties"}: a user's edit in the portal
    POST /__fake__/limit              {"burst", "interval", "search"}: the limits from now on
                                      (requests per rolling interval; searches a second)
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs


def route(fake, method: str, path: str, query: str, raw: bytes) -> tuple[int, Any]:
    body = json.loads(raw) if raw else {}
    if (method, path) == ("GET", "/__fake__/stats"):
        return 200, fake.stats()
    if (method, path) == ("GET", "/__fake__/writes"):
        after = int((parse_qs(query).get("after") or ["0"])[0])
        with fake.lock:
            done = fake.writes[after:]
            out = [
                [at, obj, oid, dict(fake.objects[obj][oid]["properties"])] for at, obj, oid in done
            ]
        return 200, {"writes": out, "next": after + len(done)}
    if (method, path) == ("POST", "/__fake__/edit"):
        fake.edit(body["type"], str(body["id"]), body["properties"])
        return 200, {"edited": body["id"]}
    if (method, path) == ("POST", "/__fake__/limit"):
        with fake.lock:
            fake.burst, fake.interval = body.get("burst"), float(body.get("interval") or 10)
            fake.search_limit = body.get("search") or 0
            fake._hits.clear()
            fake._search_hits.clear()
        return 200, {"burst": fake.burst, "interval": fake.interval, "search": fake.search_limit}
    return 404, {"status": "error", "message": f"no admin route {method} {path}"}
