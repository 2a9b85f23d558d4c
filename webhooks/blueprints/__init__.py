"""The webhook app's routes, one blueprint per concern: each webhook source, and the service
routes. A route parses the request, calls a service and answers; refusals (webhooks.verify.
Refused) are mapped to HTTP by the app's error handlers (webhooks/app.py)."""

from __future__ import annotations

from flask import Blueprint

from crm_renewals.webhooks.blueprints.hubspot import bp as hubspot
from crm_renewals.webhooks.blueprints.salesforce import bp as salesforce
from crm_renewals.webhooks.blueprints.service import bp as service
from crm_renewals.webhooks.blueprints.signals import bp as signals

BLUEPRINTS: tuple[Blueprint, ...] = (hubspot, salesforce, signals, service)
