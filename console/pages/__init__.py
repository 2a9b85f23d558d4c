"""The console's pages, one blueprint each (registered under /admin by console.app)."""

from console.pages import overview, runs

PAGES = [overview.bp, runs.bp]
