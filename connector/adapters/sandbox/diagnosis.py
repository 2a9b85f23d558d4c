"""`renewals doctor`, `mappings validate --online` and `setup` for the sandbox: its database,
records of the objects a sync needs, mapped fields present on the records."""

from __future__ import annotations

import json

from connector.adapters.sandbox.transport import SandboxTransport
from connector.domain.mapping import Mapping
from connector.ports import Check


class SandboxDiagnosis:
    def __init__(self, transport: SandboxTransport, mapping: Mapping):
        self.t, self.mapping = transport, mapping

    def doctor(self) -> list[Check]:
        checks = [Check("sandbox database", True, str(self.t.path))]
        for kind, om in self.mapping.models.items():
            (count,) = self.t.db.execute(
                "SELECT count(*) FROM records WHERE object = ? AND deleted = 0", (om.object,)
            ).fetchone()
            needed = kind in ("owner", "account", "contract")
            checks.append(
                Check(
                    f"object {om.object} ({kind})",
                    count > 0 or not needed,
                    f"{count} records",
                    "seed the sandbox: renewals sandbox seed" if needed and not count else None,
                )
            )
        return checks

    def check_mapping_online(self) -> list[Check]:
        """The sandbox has no schema: a mapped field must appear on its object's records."""
        checks = []
        for kind, om in self.mapping.models.items():
            seen: set[str] = set()
            for (fields,) in self.t.db.execute(
                "SELECT fields FROM records WHERE object = ? LIMIT 200", (om.object,)
            ):
                seen.update(json.loads(fields))
            if not seen:
                checks.append(Check(f"{om.object}", True, "no records yet; nothing to compare"))
                continue
            for name in sorted({f.split(".", 1)[0] for f in self.mapping.source_fields(kind)}):
                rel = name.endswith("__r") or f"{name}Id" in seen
                ok = name in seen or rel or name in (om.key_field, om.modified_field)
                checks.append(
                    Check(
                        f"field {om.object}.{name}",
                        ok,
                        "present" if ok else "not on any record",
                        None
                        if ok
                        else f"fix the field name in {self.mapping.crm} mapping ({kind})",
                    )
                )
        return checks

    def setup(self, apply: bool) -> list[Check]:
        return [Check("sandbox", True, "the sandbox needs no custom fields")]
