"""Linear probes of discriminator features."""

from ganbench.probe.l2svm import L2SVM, fit_path, gram_matrix, squared_hinge_objective

__all__ = ["L2SVM", "fit_path", "gram_matrix", "squared_hinge_objective"]
