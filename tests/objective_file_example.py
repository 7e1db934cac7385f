"""An objective defined outside ganbench, loaded with --objective-file tests/objective_file_example.py:Squared."""

import torch

from ganbench.objectives import Objective


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
