"""CRM adapters: each implements connector.ports.CrmClient."""
