"""``deblur-demo``: a Gradio web demo over :mod:`deblur_core`."""
