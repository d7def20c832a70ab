"""A small Inception-style network for CIFAR-10 in the Keras functional API (Szegedy et al. 2014, "Going
deeper with convolutions"): each module runs a 1x1, a 3x3 and a 5x5 convolution (the larger two behind 1x1
reductions) and a pooling branch side by side, and concatenates what they find along the channels.

    cnnlab import examples/keras-functional-inception.py -o inception.yaml
"""
from tensorflow import keras
from tensorflow.keras import layers


def inception_module(x, f1, f3_reduce, f3, f5_reduce, f5, pool_proj):
    branch1 = layers.Conv2D(f1, 1, padding="same", activation="relu")(x)
    branch3 = layers.Conv2D(f3_reduce, 1, padding="same", activation="relu")(x)
    branch3 = layers.Conv2D(f3, 3, padding="same", activation="relu")(branch3)
    branch5 = layers.Conv2D(f5_reduce, 1, padding="same", activation="relu")(x)
    branch5 = layers.Conv2D(f5, 5, padding="same", activation="relu")(branch5)
    pool = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    pool = layers.Conv2D(pool_proj, 1, padding="same", activation="relu")(pool)
    return layers.Concatenate()([branch1, branch3, branch5, pool])


inputs = keras.Input(shape=(32, 32, 3))
x = layers.Conv2D(64, 3, padding="same", activation="relu")(inputs)
x = layers.MaxPooling2D(2)(x)
x = inception_module(x, 32, 48, 64, 8, 16, 16)    # 32 + 64 + 16 + 16 = 128 channels
x = inception_module(x, 64, 64, 96, 16, 48, 32)   # 64 + 96 + 48 + 32 = 240 channels
x = layers.MaxPooling2D(2)(x)
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dropout(0.4)(x)
outputs = layers.Dense(10, activation="softmax")(x)

model = keras.Model(inputs=inputs, outputs=outputs, name="mini_inception")
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
