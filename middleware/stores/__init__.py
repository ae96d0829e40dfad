"""Store-specific code: API clients of the stores and the lookups that fetch an order's lines from them."""
