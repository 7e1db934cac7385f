"""ganbench: GANs as representation learners, scored the way the DCGAN paper did."""

__version__ = "0.1.0"
