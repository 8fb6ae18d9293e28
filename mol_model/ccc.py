"""CCC: the graph half of an F5C block (the official `edge_feature` / `get_graph_feature`).

The S*S spatial positions of a feature map are graph nodes described by their C-channel vectors.
Each node is linked to its k most similar nodes (cosine similarity, the node itself included). An edge
function shared by all channels then maps each channel's S*S-long spatial vector x through two linear
layers, takes the max over the k neighbours and applies ReLU:

    out[c] = max_j ReLU(W1 x[c] + b1 + W2 (d_j[c] - x[c]) + b2),   d_j[c][p] = x[c][nbr_j(p)] - x[c][p]

The official code feeds the second layer d_j - x = x_j - 2x (not the usual DGCNN x_j - x); trained
official weights depend on it, so it is kept. Since ReLU is monotonic and W1 x does not depend on j:

    out[c] = ReLU((W1 - 2 W2) x[c] + b1 + b2 + max_j W2 x_j[c])

which is one gather and two matrix products instead of the official 128 x k Python loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def nearest_positions(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k positions most cosine-similar to each position (itself included).

    x [N, C, P] -> [N, P, k] (int64), best first.
    """
    unit = F.normalize(x, dim=1)
    similarity = unit.transpose(1, 2) @ unit  # [N, P, P]
    return similarity.topk(k, dim=-1).indices


def gather_neighbours(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [N, C, P], idx [N, P, k] -> [N, C, k, P] with out[n, c, j, p] = x[n, c, idx[n, p, j]]."""
    n, c, p = x.shape
    k = idx.shape[-1]
    flat = idx.transpose(1, 2).reshape(n, 1, k * p).expand(n, c, k * p)
    return x.gather(2, flat).view(n, c, k, p)


class CCC(nn.Module):
    """[N, C, S, S] -> edge features [N, C, S, S] (added to the input by the F5C block)."""

    def __init__(self, positions: int = 256, neighbors: int = 4):
        super().__init__()
        self.neighbors = neighbors
        self.self_proj = nn.Linear(positions, positions)  # official CCC_k.conv1 (Conv1d(1, P, P))
        self.edge_proj = nn.Linear(positions, positions)  # official CCC_k.conv2, sees x_j - 2 x_i

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)  # [N, C, P]
        idx = nearest_positions(flat, self.neighbors)  # [N, P, k]
        w1, w2 = self.self_proj.weight, self.edge_proj.weight
        centre = F.linear(flat, w1 - 2 * w2, self.self_proj.bias + self.edge_proj.bias)  # [N, C, P]
        edges = F.linear(gather_neighbours(flat, idx), w2)  # [N, C, k, P]
        return F.relu(centre + edges.amax(dim=2)).view(n, c, h, w)
