"""GraphQL for the canteen domain."""
