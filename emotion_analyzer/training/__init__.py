"""Training: the recipe, the tf.data inputs, camera degradations, per-epoch callbacks, run folders, the trainer, evaluation and multi-worker distribution."""
