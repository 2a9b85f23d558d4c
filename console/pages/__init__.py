"""The console's pages, one blueprint each (registered under /admin by console.app)."""

from console.pages import audit, overview, reports, settings

PAGES = [overview.bp, reports.bp, settings.bp, audit.bp]
