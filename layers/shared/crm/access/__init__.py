"""Who may do what: people with roles, systems with scoped API keys, and the audit trail of their writes."""
