"""`python -m crm_renewals.connector` runs the `renewals` CLI."""

from crm_renewals.connector.cli import main

main()
