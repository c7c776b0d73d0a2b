"""The GraphQL layer: the only tree that imports strawberry."""
