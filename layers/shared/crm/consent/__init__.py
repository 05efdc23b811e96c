"""Who may be messaged: consent, the suppression list, unsubscribe links, and erasure."""
