"""The one layer of ours a saved model may hold; Keras finds it by its registered name when loading.

Imported only by code that builds or loads a model (it imports Keras).
"""

import math

import keras

GREY_LEVELS = 256


@keras.saving.register_keras_serializable(package="emotion_analyzer")
class EqualizeHistogram(keras.layers.Layer):
    """Per-image histogram equalisation of 0-255 grey images, scaled to mean 0 and standard deviation 1.

    Each pixel becomes the share of its image's pixels that are darker (ties count half), so only the
    order of grey levels is kept: lighting that brightens, darkens or bends the tones of a face without
    reordering them leaves the output unchanged. A flat image maps to zeros. No weights. Built from
    TensorFlow ops that TensorFlow Lite runs natively (segment sum, cumulative sum, gather).
    """

    def call(self, images):
        import tensorflow as tf

        shape = tf.shape(images)
        count = shape[0]
        flat = tf.reshape(images, [count, -1])
        levels = tf.cast(tf.clip_by_value(tf.round(flat), 0, GREY_LEVELS - 1), tf.int32)
        # One histogram per image in one op: image i's levels are counted in bins i*256 .. i*256+255.
        bins = levels + GREY_LEVELS * tf.range(count)[:, tf.newaxis]
        histogram = tf.math.unsorted_segment_sum(tf.ones_like(flat), bins, count * GREY_LEVELS)
        histogram = tf.reshape(histogram, [count, GREY_LEVELS])
        darker = tf.math.cumsum(histogram, axis=1, exclusive=True)
        mid_rank = (darker + 0.5 * histogram) / tf.cast(tf.shape(flat)[1], flat.dtype)
        ranks = tf.gather(mid_rank, levels, batch_dims=1)
        # Mid-ranks of distinct levels are uniform on (0, 1): mean 1/2, variance 1/12.
        return tf.reshape((ranks - 0.5) * math.sqrt(12.0), shape)

    def compute_output_shape(self, input_shape):
        return input_shape
