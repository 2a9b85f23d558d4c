"""crm-renewals: a CRM renewal engine."""
