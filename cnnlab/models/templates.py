"""Starting points offered by the Build page (the registry's named architectures are offered too)."""

TEMPLATES = {
    # The course's Model Builder network: conv-relu-maxpool twice, flatten, a dense classifier.
    "course-net": [
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}}, "relu", {"maxpool": 2},
        {"conv": {"filters": 16, "kernel": 3, "padding": "same"}}, "relu", {"maxpool": 2},
        "flatten", {"dense": "classes"},
    ],
    # The classic Keras CIFAR-10 model (examples/keras-cifar10.yaml).
    "keras-cifar10": [
        {"conv": {"filters": 32, "kernel": 3, "padding": "same", "activation": "relu"}}, "batchnorm",
        {"conv": {"filters": 32, "kernel": 3, "padding": "same", "activation": "relu"}}, "batchnorm",
        {"maxpool": 2}, {"dropout": 0.2},
        {"conv": {"filters": 64, "kernel": 3, "padding": "same", "activation": "relu"}}, "batchnorm",
        {"conv": {"filters": 64, "kernel": 3, "padding": "same", "activation": "relu"}}, "batchnorm",
        {"maxpool": 2}, {"dropout": 0.3},
        {"conv": {"filters": 128, "kernel": 3, "padding": "same", "activation": "relu"}}, "batchnorm",
        {"conv": {"filters": 128, "kernel": 3, "padding": "same", "activation": "relu"}}, "batchnorm",
        {"maxpool": 2}, {"dropout": 0.4},
        "flatten", {"dense": {"units": 1024, "activation": "relu", "max_norm": 3}}, {"dropout": 0.5},
        {"dense": {"units": 512, "activation": "relu", "max_norm": 3}}, {"dropout": 0.5}, {"dense": "classes"},
    ],
}
