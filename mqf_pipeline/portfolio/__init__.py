"""Portfolio construction: covariance, optimizer, allocators and risk integration."""
