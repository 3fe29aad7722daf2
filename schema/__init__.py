"""The GraphQL schema: Strawberry types over the contract in ../shared/contract/schema.graphql."""
