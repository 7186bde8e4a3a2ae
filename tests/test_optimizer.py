"""The eager AdamW: torch's arithmetic and state dict bit for bit, without torch's compiler."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from ictal.train.optimizer import EagerAdamW


def _train(make_optimizer, steps: int, swap_at: int | None, seed: int) -> tuple[list, dict]:
    """Weights and optimizer state after `steps` clipped, scheduled updates of a small net;
    at `swap_at` the optimizer is rebuilt from its state dict (a resume)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv1d(3, 6, 5), nn.GELU(), nn.Conv1d(6, 1, 3))
    net[2].bias.requires_grad_(False)  # a frozen parameter: no state, no update
    opt = make_optimizer(net.parameters(), lr=3e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 4))
    data = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        x = torch.randn(4, 3, 40, generator=data)
        loss = net(x).square().mean() + net(x).abs().mean()
        opt.zero_grad()
        loss.backward()
        if step % 3 == 0:  # a step with one gradient missing (set to None)
            net[0].bias.grad = None
        nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        opt.step()
        sched.step()
        if step == swap_at:
            saved, schedule = opt.state_dict(), sched.state_dict()
            opt = make_optimizer(net.parameters(), lr=3e-3, weight_decay=0.05)
            opt.load_state_dict(saved)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 4))
            sched.load_state_dict(schedule)
    return [p.detach().clone() for p in net.parameters()], opt.state_dict()


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("swap_at", [None, 5])
def test_the_same_weights_and_state_as_torch_adamw(seed, swap_at):
    ours, our_state = _train(EagerAdamW, 12, swap_at, seed)
    theirs, their_state = _train(torch.optim.AdamW, 12, swap_at, seed)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert our_state["param_groups"] == their_state["param_groups"]
    assert our_state["state"].keys() == their_state["state"].keys()
    for key, slots in their_state["state"].items():
        for name, value in slots.items():
            assert torch.equal(our_state["state"][key][name], value), (key, name)


def test_a_checkpoint_of_either_resumes_the_other():
    """Checkpoints written before this class (torch's AdamW) resume under it, and back."""
    net = nn.Linear(4, 2)
    stock = torch.optim.AdamW(net.parameters(), lr=1e-2)
    net(torch.ones(1, 4)).sum().backward()
    stock.step()
    eager = EagerAdamW(net.parameters(), lr=1e-2)
    eager.load_state_dict(stock.state_dict())
    moment = stock.state[net.weight]["exp_avg"]
    assert torch.equal(eager.state_dict()["state"][0]["exp_avg"], moment)
    back = torch.optim.AdamW(net.parameters(), lr=1e-2)
    back.load_state_dict(eager.state_dict())
    assert back.state_dict()["param_groups"] == stock.state_dict()["param_groups"]


def test_training_with_it_never_loads_the_compiler():
    """A fresh interpreter: construction, steps, zero_grad and a state-dict round trip leave
    `torch._dynamo` (1.4-2.1 s of imports) unloaded; torch's own AdamW, next, loads it (the
    control: what the class avoids)."""
    code = (
        "import sys, torch\n"
        "from torch import nn\n"
        "from ictal.train.optimizer import EagerAdamW\n"
        "net = nn.Linear(3, 1)\n"
        "for make in (EagerAdamW, torch.optim.AdamW):\n"
        "    opt = make(net.parameters(), lr=0.1)\n"
        "    for _ in range(2):\n"
        "        opt.zero_grad(); net(torch.ones(2, 3)).sum().backward(); opt.step()\n"
        "    opt.load_state_dict(opt.state_dict())\n"
        "    print(make.__name__, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.split() == ["EagerAdamW", "False", "AdamW", "True"], out.stderr[-2000:]


def test_a_step_hook_runs_once_after_torch_wrapped_its_own_class():
    """torch wraps a class's `step` with its hook runner when it first builds one; the eager
    step goes beneath that too, so a registered hook runs once per step, not twice."""
    torch.optim.AdamW(nn.Linear(2, 1).parameters())  # torch now hooks AdamW.step itself
    net = nn.Linear(2, 1)
    opt = EagerAdamW(net.parameters(), lr=0.1)
    calls: list[str] = []
    opt.register_step_pre_hook(lambda *_: calls.append("pre"))
    opt.register_step_post_hook(lambda *_: calls.append("post"))
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    assert calls == ["pre", "post"]
