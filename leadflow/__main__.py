from leadflow.commands import app

app(prog_name="leadflow")
