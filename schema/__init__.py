"""The GraphQL schema: Strawberry types over the contract in contract/schema.graphql."""
