"""Two conditional generators with one interface: fit(x, y), sample(x).

``x`` are standardised conditions, ``y`` standardised cell vectors (see data.py).

* :class:`ConditionalVAE` - MLP encoder q(z | y, x) and decoder p(y | z, x); loss =
  mean squared reconstruction error + beta * KL(q || N(0, I)); generation decodes
  z ~ N(0, I) under the requested conditions (the prior, not reconstructions).
* :class:`ConditionalWGAN` - WGAN-GP (Gulrajani et al. 2017): critic on (y, x), five
  critic steps per generator step, gradient penalty weight 10 on the norm of the
  critic's gradient taken per sample over all of its features, Adam(1e-4, betas 0.5,
  0.999) as in the field notes' reference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _mlp(n_in: int, n_out: int, hidden: int = 128, depth: int = 2) -> nn.Sequential:
    layers, width = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _step(optimiser, loss) -> None:
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()


def _seed(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(seed)


class ConditionalVAE(nn.Module):
    kind = "cvae"

    def __init__(self, n_x: int, n_y: int, latent: int = 8, hidden: int = 128, beta: float = 1.0):
        super().__init__()
        self.n_x, self.n_y, self.latent, self.hidden, self.beta = n_x, n_y, latent, hidden, beta
        self.encoder = _mlp(n_x + n_y, 2 * latent, hidden)
        self.decoder = _mlp(n_x + latent, n_y, hidden)

    def config(self) -> dict:
        return {"n_x": self.n_x, "n_y": self.n_y, "latent": self.latent, "hidden": self.hidden, "beta": self.beta}

    def loss(self, x, y, gen):
        mu, logvar = self.encoder(torch.cat([y, x], 1)).chunk(2, dim=1)
        z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
        recon = self.decoder(torch.cat([x, z], 1))
        mse = ((recon - y) ** 2).mean()
        kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1)) / self.n_y
        return mse + self.beta * kl

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int, epochs: int = 600, batch: int = 32, progress=None) -> list[float]:
        gen = _seed(seed)
        xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        history = []
        for _ in range(epochs):
            order = torch.randperm(len(xt), generator=gen)
            total = 0.0
            for i in range(0, len(xt), batch):
                idx = order[i:i + batch]
                loss = self.loss(xt[idx], yt[idx], gen)
                _step(opt, loss)
                total += float(loss.detach()) * len(idx)
            history.append(total / len(xt))
            if progress:
                progress(1)
        return history

    def sample(self, x: np.ndarray, seed: int) -> np.ndarray:
        return _sample_from_noise(self.decoder, x, self.latent, seed)


@torch.no_grad()
def _sample_from_noise(net: nn.Module, x: np.ndarray, noise_dim: int, seed: int) -> np.ndarray:
    """Outputs of a conditional net fed [conditions, seeded standard-normal noise]."""
    gen = torch.Generator().manual_seed(seed)
    xt = torch.tensor(x, dtype=torch.float32)
    z = torch.randn((len(xt), noise_dim), generator=gen)
    return net(torch.cat([xt, z], 1)).numpy().astype(float)


class ConditionalWGAN(nn.Module):
    kind = "wgan"

    def __init__(self, n_x: int, n_y: int, noise: int = 16, hidden: int = 128, gp_weight: float = 10.0, critic_steps: int = 5):
        super().__init__()
        self.n_x, self.n_y, self.noise, self.hidden = n_x, n_y, noise, hidden
        self.gp_weight, self.critic_steps = gp_weight, critic_steps
        self.generator = _mlp(n_x + noise, n_y, hidden)
        self.critic = _mlp(n_x + n_y, 1, hidden)

    def config(self) -> dict:
        return {"n_x": self.n_x, "n_y": self.n_y, "noise": self.noise, "hidden": self.hidden,
                "gp_weight": self.gp_weight, "critic_steps": self.critic_steps}

    def _gradient_penalty(self, real, fake, x, gen):
        eps = torch.rand((len(real), 1), generator=gen)  # one mixing weight per sample
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        score = self.critic(torch.cat([mix, x], 1))
        grad, = torch.autograd.grad(score.sum(), mix, create_graph=True)
        return ((grad.norm(2, dim=1) - 1) ** 2).mean()  # norm over each sample's features

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int, epochs: int = 1500, batch: int = 64, progress=None) -> list[float]:
        """``epochs`` counts generator steps. Returns the critic's Wasserstein estimate per step."""
        gen = _seed(seed)
        xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
        opt_c = torch.optim.Adam(self.critic.parameters(), lr=1e-4, betas=(0.5, 0.999))
        history = []
        n = len(xt)
        for _ in range(epochs):
            for _ in range(self.critic_steps):
                idx = torch.randint(0, n, (min(batch, n),), generator=gen)
                real, cond = yt[idx], xt[idx]
                fake = self.generator(torch.cat([cond, torch.randn((len(idx), self.noise), generator=gen)], 1)).detach()
                w = self.critic(torch.cat([real, cond], 1)).mean() - self.critic(torch.cat([fake, cond], 1)).mean()
                _step(opt_c, -w + self.gp_weight * self._gradient_penalty(real, fake, cond, gen))
            idx = torch.randint(0, n, (min(batch, n),), generator=gen)
            cond = xt[idx]
            fake = self.generator(torch.cat([cond, torch.randn((len(idx), self.noise), generator=gen)], 1))
            _step(opt_g, -self.critic(torch.cat([fake, cond], 1)).mean())
            history.append(float(w.detach()))
            if progress:
                progress(1)
        return history

    def sample(self, x: np.ndarray, seed: int) -> np.ndarray:
        return _sample_from_noise(self.generator, x, self.noise, seed)


MODELS = {"cvae": ConditionalVAE, "wgan": ConditionalWGAN}
