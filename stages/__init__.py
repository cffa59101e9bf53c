"""Pipeline stages: each a function from files to files with its params. The CLI and DVC call these."""
