"""What the audit and the benchmark both measure with: classifiers, metrics, the two-sample probe."""
