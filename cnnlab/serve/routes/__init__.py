"""The server's routes, by resource: models (build and check), runs (train, watch, stop, compare), see
(inside a trained network). Each handler parses, calls one function of cnnlab.app, and returns its data."""
