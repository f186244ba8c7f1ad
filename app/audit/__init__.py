"""The audit trail: append records, chain them, verify the chain."""
