"""GraphQL for the eldercare domain."""
