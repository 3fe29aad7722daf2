"""Root resolvers: thin adapters from the Query type onto loaders and domain rules."""
