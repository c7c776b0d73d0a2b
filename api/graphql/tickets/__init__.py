"""GraphQL types, queries and mutations of tickets, dispatch and the inbox."""
