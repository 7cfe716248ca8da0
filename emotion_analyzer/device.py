"""Which device TensorFlow computes on, asked in one place for training and the analyzer."""


def gpu_names():
    import tensorflow as tf

    return [gpu.name for gpu in tf.config.list_physical_devices("GPU")]


def describe_device():
    """'CPU', or 'GPU (names)' when TensorFlow sees one."""
    gpus = gpu_names()
    return f"GPU ({', '.join(gpus)})" if gpus else "CPU"
