"""Pure domain: canonical models, mapping, renewal planning, playbook. No I/O in here."""
