"""INTR's transformer: DETR's encoder–decoder whose cross-attention keys carry no position.

Carion et al., "End-to-End Object Detection with Transformers" (ECCV 2020), as INTR
(Paul et al., ICLR 2024; official code Imageomics/INTR, models/transformer.py) changes it.
Module and parameter names follow DETR's, so official state dicts map by renaming only.
Sequences are batch-first here (B×N×d); DETR's are sequence-first, which changes no weight.

Encoder layer (post-norm; F = features, P = sine position encoding, padded keys masked)::

    F ← LN₁(F + SelfAttn(q = F + P, k = F + P, v = F))
    F ← LN₂(F + W₂ ReLU(W₁ F))

Decoder layer (z = class-query states, z⁰ = 0; Q = the learned class queries = DETR's
``query_pos``; M = encoder memory)::

    z ← LN₁(z + SelfAttn(q = z + Q, k = z + Q, v = z))
    z ← LN₂(z + CrossAttn(q = z + Q, k = M, v = M))       (INTR: no P on the keys)
    z ← LN₃(z + W₂ ReLU(W₁ z))

then a final LayerNorm. ``pre_norm`` applies each LN to the sublayer input instead (DETR's
``normalize_before``), and adds a final encoder LayerNorm.

The cross-attention weights α ∈ R^{B×heads×C×h·w} are the explanation. They are obtained
from the same ``nn.MultiheadAttention`` call that computes the layer's output
(``need_weights=True, average_attn_weights=False``), so the per-head maps and their average
come from ONE attention computation (the official code calls the cross-attention twice, and
in pre-norm its second, averaged call is fed the un-normed state). In training mode torch
returns the weights after attention dropout — the weights actually used. Every other
attention (encoder and decoder self-attention) runs with ``need_weights=False``, which sends
``nn.MultiheadAttention`` to ``scaled_dot_product_attention`` (fused / memory-efficient
kernels); this matters for the decoder self-attention, which is O(C²) in the class count.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from ..position import EPS, SCALE, TEMPERATURE


def sine_position_encoding_masked(mask: torch.Tensor, dim: int, *, temperature: float = TEMPERATURE) -> torch.Tensor:
    """DETR's ``PositionEmbeddingSine(dim/2, normalize=True)``: ``B×dim×h×w`` from a ``B×h×w`` mask.

    ``mask`` is True on padded positions. Coordinates count VALID positions only
    (``y = cumsum`` of the valid mask down each column, ``x`` along each row) and are
    normalized by the count of valid positions in that column/row: ``e_y = y / (y_last + ε)·2π``.
    So padding at the bottom/right (DETR pads there) does not move the encoding of valid
    positions; with no padding this equals :func:`seethrough.models.position.sine_position_encoding`.
    Channels: ``dim/2`` for y then ``dim/2`` for x, ``sin`` on even and ``cos`` on odd channels.
    """
    if dim % 2:
        raise ValueError(f"the sine position encoding needs an even dimension, got {dim}")
    feats = dim // 2
    valid = (~mask).float()
    y = valid.cumsum(1)
    x = valid.cumsum(2)
    y = y / (y[:, -1:, :] + EPS) * SCALE
    x = x / (x[:, :, -1:] + EPS) * SCALE
    steps = torch.arange(feats, device=mask.device, dtype=torch.float32)
    freqs = temperature ** (2 * torch.div(steps, 2, rounding_mode="floor") / feats)
    even = torch.arange(feats, device=mask.device) % 2 == 0
    angle_y, angle_x = y[..., None] / freqs, x[..., None] / freqs  # B×h×w×feats
    enc_y = torch.where(even, angle_y.sin(), angle_y.cos())
    enc_x = torch.where(even, angle_x.sin(), angle_x.cos())
    return torch.cat([enc_y, enc_x], dim=-1).permute(0, 3, 1, 2)


class TransformerEncoderLayer(nn.Module):
    """Self-attention (q = k = F + P, v = F) and a ReLU FFN, each with residual, dropout and LN."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def _attend(self, src: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        q = k = src + pos
        return self.self_attn(q, k, src, key_padding_mask=key_padding_mask, need_weights=False)[0]

    def _ffn(self, src: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(src))))

    def forward(self, src: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            src = src + self.dropout1(self._attend(self.norm1(src), pos, key_padding_mask))
            return src + self.dropout2(self._ffn(self.norm2(src)))
        src = self.norm1(src + self.dropout1(self._attend(src, pos, key_padding_mask)))
        return self.norm2(src + self.dropout2(self._ffn(src)))


class TransformerDecoderLayer(nn.Module):
    """Query self-attention, cross-attention to the memory (keys without position), ReLU FFN."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def _self_attend(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = k = tgt + query_pos
        return self.self_attn(q, k, tgt, need_weights=False)[0]

    def _cross_attend(self, tgt: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor,
                      key_padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys = values = memory (INTR: ``pos=None`` in the decoder); weights B×heads×C×N."""
        return self.multihead_attn(tgt + query_pos, memory, memory, key_padding_mask=key_padding_mask,
                                   need_weights=True, average_attn_weights=False)

    def _ffn(self, tgt: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(tgt))))

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor,
                key_padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pre_norm:
            tgt = tgt + self.dropout1(self._self_attend(self.norm1(tgt), query_pos))
            out, weights = self._cross_attend(self.norm2(tgt), memory, query_pos, key_padding_mask)
            tgt = tgt + self.dropout2(out)
            return tgt + self.dropout3(self._ffn(self.norm3(tgt))), weights
        tgt = self.norm1(tgt + self.dropout1(self._self_attend(tgt, query_pos)))
        out, weights = self._cross_attend(tgt, memory, query_pos, key_padding_mask)
        tgt = self.norm2(tgt + self.dropout2(out))
        return self.norm3(tgt + self.dropout3(self._ffn(tgt))), weights


class TransformerEncoder(nn.Module):
    """``num_layers`` encoder layers; a final LayerNorm ``norm`` only with pre-norm (DETR)."""

    def __init__(self, layer: TransformerEncoderLayer, num_layers: int, norm: nn.LayerNorm | None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm

    def forward(self, src: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, pos, key_padding_mask)
        return src if self.norm is None else self.norm(src)


class TransformerDecoder(nn.Module):
    """``num_layers`` decoder layers and the final LayerNorm ``norm``; returns the normed last
    state and the per-head cross-attention of every layer stacked as L×B×heads×C×N."""

    def __init__(self, layer: TransformerDecoderLayer, num_layers: int, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor,
                key_padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        attention = []
        for layer in self.layers:
            tgt, weights = layer(tgt, memory, query_pos, key_padding_mask)
            attention.append(weights)
        return self.norm(tgt), torch.stack(attention)


class Transformer(nn.Module):
    """DETR's transformer as INTR uses it (defaults: INTR's main.py; DETR's ``Transformer``).

    ``forward(src B×d×h×w, mask B×h×w or None, query_embed C×d, pos B×d×h×w)`` returns the final
    LayerNorm'd decoder output ``B×C×d`` (DETR's ``hs[-1]``) and the cross-attention
    ``L×B×heads×C×(h·w)``. Initialization as DETR: Xavier-uniform on every weight matrix.
    """

    def __init__(self, d_model: int = 256, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 pre_norm: bool = False) -> None:
        super().__init__()
        encoder_layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, pre_norm)
        encoder_norm = nn.LayerNorm(d_model) if pre_norm else None  # DETR: a final encoder LN only in pre-norm
        self.encoder = TransformerEncoder(encoder_layer, num_encoder_layers, encoder_norm)
        decoder_layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, pre_norm)
        self.decoder = TransformerDecoder(decoder_layer, num_decoder_layers, nn.LayerNorm(d_model))
        self.d_model, self.nhead = d_model, nhead
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: torch.Tensor, mask: torch.Tensor | None, query_embed: torch.Tensor,
                pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = src.shape[0]
        src = src.flatten(2).transpose(1, 2)                 # B×N×d
        pos = pos.flatten(2).transpose(1, 2)
        key_padding_mask = None if mask is None else mask.flatten(1)  # None: nothing padded
        query_pos = query_embed.unsqueeze(0).expand(b, -1, -1)  # B×C×d
        memory = self.encoder(src, pos, key_padding_mask)
        tgt = torch.zeros_like(query_pos)                     # z⁰ = 0
        return self.decoder(tgt, memory, query_pos, key_padding_mask)
