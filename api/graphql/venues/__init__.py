"""GraphQL for venues and activities."""
