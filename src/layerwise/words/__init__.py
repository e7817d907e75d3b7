"""What the report says: the verdicts (claims), the sentences (prose*) and the Findings. Imports
measure (stats) and core; never the engine, the study's steps or the book."""
