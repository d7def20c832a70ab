"""The application layer: every use case cnnlab offers, as plain functions on typed inputs that return plain
data (or objects with a `render()` for the terminal). The CLI (cnnlab/cli) and the web server (cnnlab/serve)
are adapters over it: they parse their input, call one function here and render what it returns, so nothing a
page or a command knows is out of a script's or a test's reach (tests/test_layers.py keeps it so).

    datasets.py  a data set's input shape and classes, what is on this machine, its counts, augmented samples;
                 the data doctor; your own photos (a folder or a zip: the ingestion report before a run)
    data_panel.py  the data doctor's findings as the Start page draws them (pairs, groups, suspects, examples)
    thumbnails.py  a small PNG of one image of a folder that was read, never of a path that leaves it
    models.py    check, summarise and lint a model against a data set; templates; YAML in and out; import
    job.py       the Job: one training run, its events, stop and resume, the store and the doctor told
    lifecycle.py a run's life around it: run here, submit to a server, every ending recorded, restarts
    rescue.py    `cnnlab rescue`: the doctor's candidates raced within a budget; read, stop, resume one
    rescue_jobs.py  a rescue's life on a server: claimed, run in the worker, stopped, resumed, shown
    checks.py    before a long run: the dry run, the learning-rate range test, the sanity check
    recipes.py   the shipped recipes and their FLOP budgets
    store.py     the run store: list, show, tag, note, export, compare
    sweep.py     Optuna sweeps of ordinary runs
    style.py     style transfer: Gatys, and fast style networks
    runs.py      a finished run: open, diagnose, compare, evaluate, predict, report, export
    see.py       inside a trained network: an image through every layer
    config.py, limits.py  the schemas and limits a front end validates against
"""
