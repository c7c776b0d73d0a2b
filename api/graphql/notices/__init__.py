"""GraphQL for the notices domain."""
