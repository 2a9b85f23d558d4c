"""Scheduled jobs (`renewals scheduler`): each a few lines calling the same services as the CLI."""
