"""What every package shares: the user-error type and the domain's vocabulary (no project imports)."""
