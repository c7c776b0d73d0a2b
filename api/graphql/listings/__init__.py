"""GraphQL for the listings domain."""
