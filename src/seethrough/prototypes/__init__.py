"""Prototype models' own steps (ProtoPNet, Chen et al. 2019; Learnable Visual Words, Xiao et al.
2022): the push of every prototype onto its nearest training patch (:mod:`.push`), the measured
receptive field of a latent position (:mod:`.receptive_field`) and the prototype gallery with the
"this looks like that" explanation (:mod:`.gallery`)."""
from .gallery import high_activation_box, render_gallery, this_looks_like_that
from .push import NearestPatchSearch, PushResult, push_prototypes
from .receptive_field import ReceptiveField, measure_receptive_field

__all__ = ["NearestPatchSearch", "PushResult", "ReceptiveField", "high_activation_box", "measure_receptive_field",
           "push_prototypes", "render_gallery", "this_looks_like_that"]
