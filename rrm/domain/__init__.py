"""Pure domain: values and rules with no I/O (stdlib and rrm.errors only)."""
