"""Use cases: async functions that open a unit of work, call the domain and commit."""
