"""The web app (`cnnlab serve`): routes by resource over the application layer, a guard in front of them,
and a training worker process beside them."""
