"""GraphQL for library lending (the 通借通还 network)."""
