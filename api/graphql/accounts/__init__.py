"""GraphQL types and mutations for logins and the viewer."""
