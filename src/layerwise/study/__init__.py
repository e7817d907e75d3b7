"""The cached steps composed per params file (pipeline) and the study on disk, the one hand-off to
the chapters (study). Imports model, measure, inputs and core; never words or book."""
