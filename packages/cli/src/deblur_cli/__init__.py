"""``deblur-cli``: a thin Typer front end over :mod:`deblur_core`."""
