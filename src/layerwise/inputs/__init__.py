"""What goes in: the params (config), the data selection (data, duplicates, checks) and the
tokens. Imports core only."""
