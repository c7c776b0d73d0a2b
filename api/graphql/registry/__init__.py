"""GraphQL types, queries and mutations of the registry."""
