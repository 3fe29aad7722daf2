"""The domain: ids, rules and shapes of the agency platform, free of HTTP and GraphQL."""
