"""The ground floor: errors, logging, disk faults, hashes and atomic writes, locks, the metric
registry (schema), precision and the run's phases. Imports nothing else of layerwise."""
