"""`make bench`: leadflow's throughput and latency, each beside a ceiling measured in the same run.

Everything runs on this machine: the embedded broker and Postgres, the services
as separate processes (`leadflow serve`), and the load generator here. Figures
are only comparable within one run, hence the ratios.

Not part of the installed package: it runs from the repository (`python -m bench`)
with the `bench` and `devstack` extras installed. One module per phase; `runs`
puts them in order and `report` writes the tables.
"""
