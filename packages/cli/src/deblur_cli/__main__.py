from deblur_cli.main import app

app(prog_name="deblur-cli")
