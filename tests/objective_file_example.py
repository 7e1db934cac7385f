"""An objective defined outside ganbench, loaded with --objective-file tests/objective_file_example.py:Squared."""

import torch

from ganbench.objectives import Objective, OwnedModule, unwrap


class Squared(Objective):
    name = "squared-file"
    paper = "a test"
    output_kind = "critic"
    lr = 3e-4

    def d_loss(self, D, real, fake):
        r, f = D(real).float(), D(fake).float()
        return ((r - 1) ** 2).mean() + ((f + 1) ** 2).mean(), {**self.output_logs(r, f), "gap": (r - f).mean()}

    def g_loss(self, D, real, fake):
        return ((D(fake).float() - 1) ** 2).mean(), {}


NOT_AN_OBJECTIVE = torch.zeros(1)


class SquaredWithHead(Squared):
    """Squared, plus a head it owns on D's side: a linear score of D's last conv features joins D's output."""

    name = "squared-head-file"

    def build_modules(self, gen, disc):
        c, h, w = disc.layer_shapes()[-1]
        return {"head": OwnedModule(torch.nn.Linear(c * h * w, 1), "d")}

    def score(self, D, x):
        out = D(x).float()  # through D itself first (under torchrun this arms DDP's gradient averaging)
        return out + self.modules["head"](unwrap(D).feature_maps(x)[-1].flatten(1)).view(-1).float()

    def d_loss(self, D, real, fake):
        r, f = self.score(D, real), self.score(D, fake)
        return ((r - 1) ** 2).mean() + ((f + 1) ** 2).mean(), self.output_logs(r, f)

    def g_loss(self, D, real, fake):
        return ((self.score(D, fake) - 1) ** 2).mean(), {}
