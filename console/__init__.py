"""The admin console: server-rendered pages under /admin on `renewals serve`, beside the
webhook receiver. Views parse the request, call the services the CLI calls (connector.services)
and render a template; no SQL and no CRM call here.

    install(app, ...)   wires the console into the webhook app (webhooks.app.create_app)
    state               what the views share (ConsoleState): config, store, a CRM context
    auth                sign-in, sign-out, the guard every request passes (session, role, CSRF)
    pages/              one blueprint a page
"""

from crm_renewals.console.app import install

__all__ = ["install"]
