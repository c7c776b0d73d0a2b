"""Accounts: logins, server-side sessions and role grants scoped to communities."""
