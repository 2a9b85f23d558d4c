"""The console's pages, one blueprint each (registered under /admin by console.app)."""

from console.pages import overview, reports

PAGES = [overview.bp, reports.bp]
