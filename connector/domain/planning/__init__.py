"""Planning a contract in parts: `eligibility` (a renewal now, or a Skip with its reason),
`build_renewal` (the renewal opportunity and its lines, or CPQ's variant) and `plan_tasks`
(the playbook's tasks, whichever way the renewal went), put together by `Planner` into one
`ContractPlan` per contract. Pure: the same functions answer `sync`, `--dry-run` and
`explain`."""
