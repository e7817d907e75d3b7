"""The computations on hidden states and their statistics: the one forward pass (extract),
kernels and metrics, similarity, probes, MDL, controls, stats. Imports inputs and core."""
