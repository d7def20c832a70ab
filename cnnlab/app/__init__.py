"""The application layer: every use case cnnlab offers, as plain functions on typed inputs that return plain
data (or objects with a `render()` for the terminal). The CLI (cnnlab/cli) and the web server (cnnlab/serve)
are adapters over it: they parse their input, call one function here and render what it returns, so nothing a
page or a command knows is out of a script's or a test's reach (tests/test_layers.py keeps it so).

    datasets.py  a data set's input shape and classes, what is on this machine, its counts, augmented samples
    models.py    check, summarise and lint a model against a data set; templates; YAML in and out; import
    jobs.py      a run's life: start, stop, resume, watch, and a failure recorded as a run
    runs.py      a finished run: open, diagnose, compare, evaluate, predict, see, report, export
"""
