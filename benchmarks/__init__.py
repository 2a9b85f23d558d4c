"""On-demand benchmarks (not part of the test suite): `python -m benchmarks [NAME ...]`.

planning  Planner.plan_book throughput over a synthetic in-memory book (contracts/s, one core)
memory    peak RSS of building and planning a 100,000-contract book (fresh subprocess)
calls     CRM API calls of a 10,000-contract sandbox sync against the lower bound
webhooks  signed HubSpot batches/s and p50/p99 of `renewals serve` vs a bare Flask app
lag       HubSpot change to CRM write: signed deal events to `renewals serve`, p50/p95, a ramp
"""
