"""The case service's routes, one module per group of resources."""
