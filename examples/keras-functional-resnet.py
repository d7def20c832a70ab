"""A small ResNet for CIFAR-10 in the Keras functional API, as blog posts and answers write it: a 3x3 stem,
three stages of two residual blocks (16, 32, 64 filters; the first block of each later stage halves the map
and projects its shortcut with a 1x1 conv), global average pooling and a softmax classifier
(He et al. 2015, section 4.2). `examples/pytorch-resnet-net.py` is the same network in PyTorch.

    cnnlab import examples/keras-functional-resnet.py -o resnet14.yaml
"""
from tensorflow import keras
from tensorflow.keras import layers


def residual_block(x, filters, stride=1):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
    y = layers.Add()([shortcut, y])
    return layers.Activation("relu")(y)


inputs = keras.Input(shape=(32, 32, 3))
x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
x = layers.BatchNormalization()(x)
x = layers.Activation("relu")(x)
for stage, filters in enumerate([16, 32, 64]):
    for block in range(2):
        x = residual_block(x, filters, stride=2 if stage > 0 and block == 0 else 1)
x = layers.GlobalAveragePooling2D()(x)
outputs = layers.Dense(10, activation="softmax")(x)

model = keras.Model(inputs, outputs, name="resnet14")
model.summary()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
