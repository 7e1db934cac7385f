"""GAN objectives and the autoencoders set beside them: the contract (base.py) and the built-ins (registry.py
registers them by name)."""

from ganbench.objectives.autoencoder import Autoencoder, DenoisingAutoencoder, Vae
from ganbench.objectives.base import OUTPUT_KINDS, SIDES, Objective, OwnedModule, unwrap
from ganbench.objectives.bigan import BiGan
from ganbench.objectives.classic import Hinge, LeastSquares, Minimax, NonSaturating
from ganbench.objectives.feature_matching import FeatureMatching
from ganbench.objectives.ssgan import SsGan
from ganbench.objectives.wgan_gp import WganGp

BUILTIN_OBJECTIVES: tuple[type[Objective], ...] = (NonSaturating, Minimax, LeastSquares, Hinge, WganGp, FeatureMatching,
                                                   SsGan, BiGan, Autoencoder, DenoisingAutoencoder, Vae)
# names earlier ganbench versions wrote into config.toml
ALIASES = {"bce": "ns"}

__all__ = ["ALIASES", "BUILTIN_OBJECTIVES", "OUTPUT_KINDS", "SIDES", "Objective", "OwnedModule", "unwrap"]
