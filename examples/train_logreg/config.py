"""Hyperparameters of train.py: the file ratchet's agent may edit.

The defaults are deliberately mediocre (a small learning rate, few epochs,
raw unscaled features, no interaction term), so there is real room to lower
val_loss. Keep a run within a few seconds: the work is epochs * n_train.
"""

LEARNING_RATE = 0.0001  # step size of mini-batch gradient descent
EPOCHS = 10             # passes over the training set
BATCH_SIZE = 64         # examples per gradient step
L2 = 0.0                # weight decay on the weights (not the bias)
STANDARDIZE = False     # rescale each feature to mean 0, std 1 (train statistics)
INTERACTIONS = False    # add the pairwise products of the first four features
