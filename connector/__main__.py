"""`python -m connector` runs the `renewals` CLI."""

from connector.cli import main

main()
