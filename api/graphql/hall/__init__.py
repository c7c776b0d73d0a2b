"""GraphQL for the hall domain."""
