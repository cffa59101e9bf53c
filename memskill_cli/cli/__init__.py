"""The Typer CLI: a thin layer over the stages. Human output goes to stderr, data to stdout."""
