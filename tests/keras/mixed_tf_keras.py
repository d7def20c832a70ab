# tf.keras spellings: InputLayer, kernel_size as a list, padding="SAME", MaxPool2D(), LeakyReLU(0.2), an activation function object.
from tensorflow import keras
from tensorflow.keras import layers
model = keras.Sequential(name="mixed")
model.add(layers.InputLayer(input_shape=(32, 32, 3)))
model.add(layers.Conv2D(32, kernel_size=[3,3], padding="SAME", kernel_initializer="he_uniform"))
model.add(layers.LeakyReLU(0.2))
model.add(layers.MaxPool2D())
model.add(layers.Conv2D(64, 3, activation="relu"))
model.add(layers.MaxPooling2D(2, 2))
model.add(layers.BatchNormalization(axis=-1, momentum=0.9))
model.add(layers.GlobalAveragePooling2D())
model.add(layers.Dense(10, activation=keras.activations.softmax))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
