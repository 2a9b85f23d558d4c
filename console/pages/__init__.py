"""The console's pages, one blueprint each (registered under /admin by console.app)."""

from crm_renewals.console.pages import (
    audit,
    connections,
    contracts,
    deadletters,
    health,
    mapping_changes,
    mappings,
    overview,
    reports,
    runs,
    settings,
)

PAGES = [overview.bp, runs.bp, reports.bp, settings.bp, audit.bp]
PAGES += [contracts.bp, health.bp, deadletters.bp]
PAGES += [mappings.bp, mapping_changes.bp, connections.bp]
