"""The plumbing every stage shares: errors, configuration, vocabulary, runtime, files and locks."""
