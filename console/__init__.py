"""The admin console: server-rendered pages under /admin on `renewals serve`, beside the
webhook receiver. Views parse the request, call the services the CLI calls (connector.services)
and render a template; no SQL and no CRM call here.

    install(app, ...)   wires the console into the webhook app (webhooks.app.create_app)
    state               what the views share: the deployment (ConsoleState: app.yaml, the
                        registry, users) and one ConnectionState per CRM connection (its
                        config, store, CRM context, doctor verdict, caches), opened lazily
    current             which connection a request is for (?connection=, the switcher's
                        choice in the session, else the deployment's); links keep it
    auth                sign-in, sign-out, the guard every request passes (session, role, CSRF)
    pages/              one blueprint a page
"""

from crm_renewals.console.app import install

__all__ = ["install"]
